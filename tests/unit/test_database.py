"""MariaDB: the official image's contract, the rendered server config and accounts hook, and the
config run on a real MariaDB server (Debian's mariadb-server) with certificates from a throw-away
CA. The image's contract is written out here from its documentation, never taken from the
component, so that a component drifting from the image fails these tests.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import os
import re
import shutil
import subprocess
import time
from pathlib import Path, PurePosixPath

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.database import (
    BACKUP_USER,
    DatabaseSettings,
    HookAccounts,
    ServerPaths,
    render_accounts_hook,
    render_server_config,
)
from components.settings import Settings, validate_settings
from tools.recording import RecordedResource, Recording

REPO = Path(__file__).resolve().parents[2]
STACKS = ["dev", "prod"]
CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
PASSWORD = "random:index/randomPassword:RandomPassword"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
CA_CERT = "tls:index/selfSignedCert:SelfSignedCert"
LEAF_CERT = "tls:index/locallySignedCert:LocallySignedCert"

# --- the image's contract: mariadb:11.4 (MariaDB/mariadb-docker, 11.4/docker-entrypoint.sh, and
# MariaDB's page "MariaDB Server Docker Official Image Environment Variables") ----------------

# docker_setup_env reads each of these also as `<name>_FILE`, the value then being a file's content.
MARIADB_FILE_VARIABLES = frozenset(
    {
        "MARIADB_ROOT_HOST",
        "MARIADB_DATABASE",
        "MARIADB_USER",
        "MARIADB_PASSWORD",
        "MARIADB_ROOT_PASSWORD",
        "MARIADB_PASSWORD_HASH",
        "MARIADB_ROOT_PASSWORD_HASH",
        "MARIADB_REPLICATION_USER",
        "MARIADB_REPLICATION_PASSWORD",
        "MARIADB_REPLICATION_PASSWORD_HASH",
        "MARIADB_MASTER_HOST",
        "MARIADB_MASTER_PORT",
    }
)
MARIADB_OTHER_VARIABLES = frozenset(
    {
        "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
        "MARIADB_RANDOM_ROOT_PASSWORD",
        "MARIADB_INITDB_SKIP_TZINFO",
        "MARIADB_MYSQL_LOCALHOST_USER",
        "MARIADB_MYSQL_LOCALHOST_GRANTS",
        "MARIADB_HEALTHCHECK_GRANTS",
        "MARIADB_AUTO_UPGRADE",
        "MARIADB_DISABLE_UPGRADE_BACKUP",
    }
)
# The legacy MYSQL_* aliases are documented too but left out: the MARIADB_* names take precedence.
MARIADB_VARIABLES = (
    MARIADB_FILE_VARIABLES
    | {f"{name}_FILE" for name in MARIADB_FILE_VARIABLES}
    | MARIADB_OTHER_VARIABLES
)
# docker_verify_minimum_env refuses to initialise a new data directory without one of these.
MARIADB_ROOT_PASSWORD_CHOICES = frozenset(
    {
        "MARIADB_ROOT_PASSWORD",
        "MARIADB_ROOT_PASSWORD_FILE",
        "MARIADB_ROOT_PASSWORD_HASH",
        "MARIADB_ROOT_PASSWORD_HASH_FILE",
        "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
        "MARIADB_RANDOM_ROOT_PASSWORD",
    }
)
# A password in one of these shows in `docker inspect`; the *_FILE variants keep it out.
PLAIN_PASSWORD_VARIABLES = frozenset(
    {
        "MARIADB_ROOT_PASSWORD",
        "MARIADB_PASSWORD",
        "MARIADB_REPLICATION_PASSWORD",
        "MYSQL_ROOT_PASSWORD",
        "MYSQL_PASSWORD",
    }
)
# The image's VOLUME, and the directory whose *.cnf files the server reads after the image's own
# configuration.
MARIADB_DATA_DIR = "/var/lib/mysql"
MARIADB_CONF_DIR = "/etc/mysql/conf.d"
# Option groups the server (mariadbd) reads from an option file.
SERVER_GROUPS = ("[mariadbd]", "[mysqld]", "[server]", "[mariadb]")
# The server's log directory of MariaDB's Debian packages, which the image is built from: the
# stack keeps the audit log there, on a volume of its own.
MARIADB_LOG_DIR = "/var/log/mysql"
# The server's port: neither the image nor the stack's config changes it.
MARIADB_PORT = 3306
# The entrypoint starts as root, chowns the data and socket directories, then steps down to
# `mysql` through gosu; the stack adds a chown of the log volume before it.
ENTRYPOINT_CAPABILITIES = {"CHOWN", "DAC_READ_SEARCH", "SETUID", "SETGID"}

# Options that name a file or directory: checked by following them to what the container holds.
PATH_OPTIONS = frozenset(
    {"ssl_ca", "ssl_cert", "ssl_key", "server_audit_file_path", "secure_file_priv", "init_file"}
)


def expected_options(settings: Settings) -> dict[str, str]:
    """Every other server option with the value the stack's settings call for."""
    database = settings.database
    return {
        # OpenEMR's installer creates its tables with this character set and collation.
        "character_set_server": "utf8mb4",
        "collation_server": "utf8mb4_general_ci",
        "skip_name_resolve": "ON",
        # Half the container's memory for InnoDB's page cache.
        "innodb_buffer_pool_size": f"{database.memory_mb // 2}M",
        "tls_version": "TLSv1.2,TLSv1.3",
        "require_secure_transport": "ON" if settings.is_prod else "OFF",
        "server_id": "1",
        # The backup job archives the binary logs matching its default glob, mariadb-bin.*.
        "log_bin": "mariadb-bin",
        "binlog_format": "ROW",
        "sync_binlog": "1",
        "binlog_expire_logs_seconds": str(database.binlog_retention_days * 24 * 3600),
        "plugin_load_add": "server_audit",
        "server_audit": "FORCE_PLUS_PERMANENT",
        "server_audit_logging": "ON",
        "server_audit_events": "CONNECT,QUERY_DDL,QUERY_DCL",
        "server_audit_output_type": "file",
        "server_audit_file_rotate_size": str(100 * 1024 * 1024),
        "server_audit_file_rotations": "30",
    }


def stack_settings(stack: str) -> Settings:
    """The committed stack file's settings, validated as the program validates them."""
    configured = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    return validate_settings({key.split(":", 1)[1]: value for key, value in configured.items()})


def database_container(recording: Recording) -> RecordedResource:
    return recording.named("database", CONTAINER)


def environment(container: RecordedResource) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in container.input("envs"))


def upload_contents(recording: Recording) -> dict[str, str]:
    """The files the database container reads from uploads (through its file carrier)."""
    return {f.file: f.content for f in recording.uploaded_files(database_container(recording))}


def server_config(recording: Recording) -> str:
    """The one option file uploaded into the image's conf.d directory."""
    configs = [
        content
        for path, content in upload_contents(recording).items()
        if PurePosixPath(path).parent == PurePosixPath(MARIADB_CONF_DIR) and path.endswith(".cnf")
    ]
    assert len(configs) == 1, f"expected one *.cnf in {MARIADB_CONF_DIR}, found {len(configs)}"
    return configs[0]


def config_options(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.startswith("#")}


def account_passwords(recording: Recording) -> dict[str, str]:
    """Generated password of each credential account, by account name."""
    return {
        password.input("keepers")["account"]: password.output("result")
        for password in recording.of_type(PASSWORD)
    }


def mounts(container: RecordedResource) -> dict[str, str]:
    """Container path -> volume name, for the named volumes (not the file carrier's)."""
    return {
        mount["containerPath"]: mount["volumeName"]
        for mount in container.input("volumes")
        if "volumeName" in mount
    }


def data_classes(recording: Recording) -> dict[str, str]:
    """Volume name -> its hospital.data-class label."""
    return {
        volume.input("name"): {label["label"]: label["value"] for label in volume.input("labels")}[
            "hospital.data-class"
        ]
        for volume in recording.of_type(VOLUME)
    }


# Every variable is one the official image documents, a root password is chosen (the entrypoint
# refuses to start without one), and no password travels as a plain variable.
@pytest.mark.parametrize("stack", STACKS)
def test_database_sets_only_variables_the_image_documents(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    container = database_container(recording)

    names = set(environment(container))

    undocumented = sorted(names - MARIADB_VARIABLES)
    assert not undocumented, f"{stack}: variables the mariadb image ignores: {undocumented}"
    assert names & MARIADB_ROOT_PASSWORD_CHOICES, f"{stack}: no root password variable is set"
    plain = sorted(names & PLAIN_PASSWORD_VARIABLES)
    assert not plain, f"{stack}: passwords passed as plain variables instead of *_FILE: {plain}"
    assert not container.input_holds_secret("envs"), f"{stack}: no variable should be secret"


# Each *_FILE variable names an uploaded file, the two password files hold the generated
# passwords of the root and application accounts, and schema and account are the stack's.
@pytest.mark.parametrize("stack", STACKS)
def test_file_variables_hold_the_generated_passwords(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    container = database_container(recording)
    settings = stack_settings(stack)
    env, files = environment(container), upload_contents(recording)

    passwords = account_passwords(recording)

    file_variables = {name: path for name, path in env.items() if name.endswith("_FILE")}
    missing = {name: path for name, path in file_variables.items() if path not in files}
    assert not missing, f"{stack}: *_FILE variables name files that are not uploaded: {missing}"
    # Compared as booleans: a failure must not print the passwords.
    holds_root = files[env["MARIADB_ROOT_PASSWORD_FILE"]] == passwords["database-root"]
    assert holds_root, f"{stack}: MARIADB_ROOT_PASSWORD_FILE does not hold database-root's password"
    holds_app = files[env["MARIADB_PASSWORD_FILE"]] == passwords["database-app"]
    assert holds_app, f"{stack}: MARIADB_PASSWORD_FILE does not hold database-app's password"
    assert env["MARIADB_DATABASE"] == settings.database.name, f"{stack}: wrong schema"
    assert env["MARIADB_USER"] == settings.database.user, f"{stack}: wrong application account"
    assert env["MARIADB_ROOT_HOST"] == "localhost", f"{stack}: root is reachable over the network"


# The password files (those the entrypoint reads and those the accounts hook loads) and the TLS
# key are secret uploads; the server config and the hook stay readable in the plan.
@pytest.mark.parametrize("stack", STACKS)
def test_password_files_and_key_are_the_only_secret_uploads(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    container = database_container(recording)
    env, files = environment(container), upload_contents(recording)
    options = config_options(server_config(recording))
    loaded = set(re.findall(r"LOAD_FILE\('([^']+)'\)", files[options["init_file"]]))

    secret = {f.file for f in recording.uploaded_files(container) if f.secret}

    expected = {env["MARIADB_ROOT_PASSWORD_FILE"], env["MARIADB_PASSWORD_FILE"], options["ssl_key"]}
    assert len(loaded) == 2, f"{stack}: the hook should load the root and backup passwords"
    assert secret == expected | loaded, f"{stack}: secret uploads are {sorted(secret)}"
    outside = [
        path for path in loaded if str(PurePosixPath(path).parent) != options["secure_file_priv"]
    ]
    assert not outside, f"{stack}: LOAD_FILE reads only inside secure_file_priv, not {outside}"


# The database joins the data zone only and publishes nothing, in both stacks.
@pytest.mark.parametrize("stack", STACKS)
def test_database_is_never_published_and_only_on_the_data_zone(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    container = database_container(recording)

    networks = [network["name"] for network in container.input("networksAdvanced")]

    assert not container.input("ports"), f"{stack}: database publishes {container.input('ports')}"
    assert networks == [f"hospital-{stack}-data"], f"{stack}: database joins {networks}"


# Data lives on a PHI volume at the image's data directory, the audit log on a logs volume at the
# server's log directory; nothing else is mounted.
@pytest.mark.parametrize("stack", STACKS)
def test_volumes_sit_at_the_images_paths_with_their_data_class(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    classes = data_classes(recording)

    mounted = mounts(database_container(recording))

    assert set(mounted) == {MARIADB_DATA_DIR, MARIADB_LOG_DIR, "/tmp"}, (
        f"{stack}: {sorted(mounted)}"
    )
    assert classes[mounted[MARIADB_DATA_DIR]] == "phi", "the data directory (and binlogs) is phi"
    assert classes[mounted[MARIADB_LOG_DIR]] == "logs", "the audit log volume is a logs volume"
    # The root is read-only: the server's temporary files go to a volume, not to memory.
    assert classes[mounted["/tmp"]] == "scratch", "/tmp holds only temporary files"


# The server reads the stack's options: one *.cnf file in the image's conf.d directory whose first
# group is one the server reads.
@pytest.mark.parametrize("stack", STACKS)
def test_server_config_lands_where_the_image_reads_it(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")

    content = server_config(recording)

    groups = [line for line in content.splitlines() if line.startswith("[")]
    assert groups and groups[0] in SERVER_GROUPS, f"{stack}: option groups are {groups}"


# The uploaded server config is, in full, what the renderer makes of the stack's own settings.
@pytest.mark.parametrize("stack", STACKS)
def test_uploaded_server_config_is_the_rendered_one_for_the_stacks_settings(
    stack: str, request
) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    settings = stack_settings(stack)

    uploaded = server_config(recording)

    rendered = render_server_config(settings.database, ServerPaths(), settings.is_prod)
    difference = "\n".join(difflib.unified_diff(rendered.splitlines(), uploaded.splitlines()))
    assert uploaded == rendered, f"{stack}: upload differs from the rendering:\n{difference}"


# Every option of the uploaded config has the value the stack's settings call for, and no option
# is missing or added.
@pytest.mark.parametrize("stack", STACKS)
def test_server_options_are_the_ones_the_stack_calls_for(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    expected = expected_options(stack_settings(stack))

    options = config_options(server_config(recording))

    values = {key: value for key, value in options.items() if key not in PATH_OPTIONS}
    wrong = {
        key: (values.get(key), value) for key, value in expected.items() if values.get(key) != value
    }
    assert not wrong, f"{stack}: options (found, expected): {wrong}"
    assert set(values) == set(expected), (
        f"{stack}: unexpected options {set(values) - set(expected)}"
    )
    assert set(options) >= PATH_OPTIONS, f"{stack}: missing {PATH_OPTIONS - set(options)}"


# The options naming files point at what the container holds: the stack's CA, the database's
# certificate and key, the accounts hook, and an audit log on the log volume.
@pytest.mark.parametrize("stack", STACKS)
def test_path_options_point_at_what_the_container_receives(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    files = upload_contents(recording)

    options = config_options(server_config(recording))

    ca = recording.named("pki-ca", CA_CERT).output("certPem")
    assert files.get(options["ssl_ca"]) == ca, f"{stack}: ssl_ca is not the stack's CA"
    leaf = recording.named("pki-database", LEAF_CERT).output("certPem")
    assert files.get(options["ssl_cert"]) == leaf, f"{stack}: ssl_cert is not the database's"
    key = recording.named("pki-database", PRIVATE_KEY).output("privateKeyPem")
    holds_key = files.get(options["ssl_key"]) == key
    assert holds_key, f"{stack}: ssl_key is not the database certificate's private key"
    assert options["init_file"] in files, f"{stack}: init_file {options['init_file']} is missing"
    audit_dir = PurePosixPath(options["server_audit_file_path"]).parent
    assert audit_dir == PurePosixPath(MARIADB_LOG_DIR), f"{stack}: audit log lands in {audit_dir}"


# Prod requires TLS 1.2+ with the PKI certificate, audits DDL/DCL and keeps bounded binlogs.
def test_prod_config_holds_what_prod_requires() -> None:
    settings = DatabaseSettings(binlog_retention_days=5)

    options = config_options(render_server_config(settings, ServerPaths(), is_prod=True))

    assert options["require_secure_transport"] == "ON"
    assert options["tls_version"] == "TLSv1.2,TLSv1.3"
    assert {"ssl_cert", "ssl_key", "ssl_ca"} <= options.keys(), "TLS material is not configured"
    assert options["skip_name_resolve"] == "ON"
    assert options["log_bin"], "binary logging (point-in-time recovery) is off"
    assert options["binlog_expire_logs_seconds"] == str(5 * 86400)
    assert options["plugin_load_add"] == "server_audit"
    assert options["server_audit"] == "FORCE_PLUS_PERMANENT", "the audit plugin can be unloaded"
    assert options["server_audit_logging"] == "ON"
    assert set(options["server_audit_events"].split(",")) == {"CONNECT", "QUERY_DDL", "QUERY_DCL"}
    assert int(options["server_audit_file_rotations"]) > 0


# Dev differs from prod in exactly one option: TLS stays on but is not required.
def test_dev_config_differs_from_prod_only_in_requiring_tls() -> None:
    dev = config_options(render_server_config(DatabaseSettings(), ServerPaths(), is_prod=False))
    prod = config_options(render_server_config(DatabaseSettings(), ServerPaths(), is_prod=True))

    differing = {key for key in prod if dev.get(key) != prod[key]}

    assert differing == {"require_secure_transport"}, f"dev and prod differ in {differing}"
    assert dev["ssl_cert"] == prod["ssl_cert"], "dev must keep TLS on"


# The backup account gets read-only grants on the schema and routine bodies, nothing global.
def test_backup_account_has_only_dump_privileges() -> None:
    hook = render_accounts_hook(HookAccounts(schema="openemr"))
    grants = [line for line in hook.splitlines() if line.startswith("GRANT")]

    granted = " ".join(grants)

    assert grants, "the hook grants nothing to the backup account"
    assert "*.*" not in granted, f"global privileges granted: {grants}"
    for privilege in ("ALL", "INSERT", "UPDATE", "DELETE", "DROP", "FILE", "SUPER", "RELOAD"):
        assert f" {privilege}" not in granted.replace("ALL", " ALL"), f"{privilege} granted"
    assert "REQUIRE SSL" in hook, "the backup account may connect without TLS"
    assert all(line.endswith(";") for line in hook.splitlines()), "init_file needs one per line"


# The host names the EMR and the backup job dial are on the certificate the server presents, and
# they dial the server's own port.
def test_database_certificate_names_what_clients_connect_to(prod_recording: Recording) -> None:
    pem = prod_recording.named("pki-database", LEAF_CERT).output("certPem")
    emr = environment(prod_recording.named("emr", CONTAINER))
    backup = environment(prod_recording.named("backup", CONTAINER))

    names = (
        x509.load_pem_x509_certificate(pem.encode())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value.get_values_for_type(x509.DNSName)
    )

    assert emr["MYSQL_HOST"] in names, f"the EMR dials {emr['MYSQL_HOST']}; SANs are {names}"
    assert backup["BACKUP_DB_HOST"] in names, f"backup dials {backup['BACKUP_DB_HOST']}: {names}"
    assert int(emr["MYSQL_PORT"]) == int(backup["BACKUP_DB_PORT"]) == MARIADB_PORT
    assert "port" not in config_options(server_config(prod_recording))


# --- the rendered config on a real server --------------------------------------------------


def _certificate_pair(directory: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    key = ec.generate_private_key(ec.SECP384R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(leaf.public_bytes(pem))
    (directory / "server-key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="module")
def real_server(tmp_path_factory) -> dict[str, Path | str]:
    """Debian's mariadbd running the rendered prod config and accounts hook on a local port."""
    for tool in ("mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump"):
        assert shutil.which(tool), f"{tool} missing: apt-get install mariadb-server"
    root = tmp_path_factory.mktemp("mariadb")
    for name in ("data", "logs", "tls", "secrets", "run"):
        (root / name).mkdir()
    _certificate_pair(root / "tls")
    passwords = {"root": "Root-pass_1", "backup": "Backup-pass_2"}
    for account, password in passwords.items():
        (root / "secrets" / f"{account}-password").write_text(password)
    paths = ServerPaths(
        tls_ca=str(root / "tls/ca.pem"),
        tls_cert=str(root / "tls/server.pem"),
        tls_key=str(root / "tls/server-key.pem"),
        secrets_dir=str(root / "secrets"),
        accounts_hook=str(root / "accounts.sql"),
        audit_log=str(root / "logs/server_audit.log"),
    )
    accounts = HookAccounts(
        schema="openemr",
        root_password_file=str(root / "secrets/root-password"),
        backup_password_file=str(root / "secrets/backup-password"),
    )
    (root / "accounts.sql").write_text(render_accounts_hook(accounts))
    port = str(20000 + os.getpid() % 20000)
    local = (
        f"[mariadbd]\ndatadir = {root}/data\nsocket = {root}/run/mysqld.sock\nport = {port}\n"
        f"bind_address = 127.0.0.1\nuser = root\npid_file = {root}/run/mysqld.pid\n"
    )
    rendered = render_server_config(DatabaseSettings(), paths, is_prod=True)
    (root / "my.cnf").write_text(local + rendered.replace("[mariadbd]\n", ""))
    defaults = f"--defaults-file={root}/my.cnf"

    subprocess.run(
        ["mariadb-install-db", defaults, "--auth-root-authentication-method=normal"],
        check=True,
        capture_output=True,
    )
    with open(root / "error.log", "w") as error_log:
        server = subprocess.Popen(
            ["mariadbd", defaults], stdout=subprocess.DEVNULL, stderr=error_log
        )
    socket = str(root / "run/mysqld.sock")
    for _ in range(100):
        probe = subprocess.run(
            ["mariadb", f"--socket={socket}", "-uroot", f"-p{passwords['root']}", "-e", "DO 1"],
            capture_output=True,
        )
        if probe.returncode == 0 or server.poll() is not None:
            break
        time.sleep(0.1)
    yield {"root_dir": root, "port": port, "socket": socket, **passwords}
    server.terminate()
    server.wait(timeout=30)


def _tls(server) -> list[str]:
    return [f"--ssl-ca={server['root_dir']}/tls/ca.pem", "--ssl-verify-server-cert"]


def _as_root(server, sql: str) -> subprocess.CompletedProcess:
    """Root over the socket, with the password the hook set from its file."""
    return subprocess.run(
        ["mariadb", f"--socket={server['socket']}", "-uroot", f"-p{server['root']}", "-e", sql],
        capture_output=True,
        text=True,
    )


def _as_backup(server, *args: str, program: str = "mariadb") -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            program,
            "-h127.0.0.1",
            f"-P{server['port']}",
            f"-u{BACKUP_USER}",
            f"-p{server['backup']}",
            *_tls(server),
            *args,
        ],
        capture_output=True,
        text=True,
    )


# The real server starts with the rendered prod config, and the hook set root's password.
def test_real_server_runs_the_rendered_config(real_server) -> None:
    with_password = _as_root(real_server, "SELECT @@require_secure_transport, @@log_bin")
    without = subprocess.run(
        ["mariadb", f"--socket={real_server['socket']}", "-uroot", "-e", "DO 1"],
        capture_output=True,
    )

    log = (real_server["root_dir"] / "error.log").read_text()
    assert with_password.returncode == 0, f"server did not start: {log[-2000:]}"
    assert with_password.stdout.split()[-2:] == ["1", "1"], with_password.stdout
    assert without.returncode != 0, "root logs in without the password from its file"
    assert "ERROR" not in log.upper().replace("ERROR_LOG", ""), f"errors at start: {log}"


# TLS 1.2+ is used by clients that ask for it; the same account without TLS is refused.
def test_real_server_requires_tls(real_server) -> None:
    _as_root(real_server, "CREATE USER IF NOT EXISTS probe@'%' IDENTIFIED BY 'Probe-pass_3'")
    secured = _as_backup(real_server, "-Nse", "SHOW SESSION STATUS LIKE 'Ssl_version'")
    plain = subprocess.run(
        [
            "mariadb",
            "-h127.0.0.1",
            f"-P{real_server['port']}",
            "-uprobe",
            "-pProbe-pass_3",
            "--skip-ssl",
            "-e",
            "DO 1",
        ],
        capture_output=True,
        text=True,
    )

    assert secured.returncode == 0, f"backup login over TLS failed: {secured.stderr}"
    assert secured.stdout.split()[-1] in ("TLSv1.2", "TLSv1.3"), secured.stdout
    probe_over_tls = subprocess.run(
        [
            "mariadb",
            "-h127.0.0.1",
            f"-P{real_server['port']}",
            "-uprobe",
            "-pProbe-pass_3",
            *_tls(real_server),
            "-e",
            "DO 1",
        ],
        capture_output=True,
        text=True,
    )
    assert plain.returncode != 0, "a client without TLS got in"
    assert probe_over_tls.returncode == 0, f"the same account over TLS fails: {probe_over_tls}"


# The backup account dumps rows, views and routines consistently, and the DDL is audited.
def test_backup_account_dumps_and_ddl_is_audited(real_server) -> None:
    created = _as_root(
        real_server,
        "CREATE DATABASE IF NOT EXISTS openemr; USE openemr;"
        " CREATE TABLE patient_data (id INT PRIMARY KEY); INSERT INTO patient_data VALUES (7);"
        " CREATE VIEW patients AS SELECT id FROM patient_data;"
        " CREATE PROCEDURE count_patients() SELECT COUNT(*) FROM patient_data;",
    )

    dump = _as_backup(
        real_server,
        "--single-transaction",
        "--routines",
        "--events",
        "--triggers",
        "--databases",
        "openemr",
        program="mariadb-dump",
    )

    audit = Path(real_server["root_dir"] / "logs/server_audit.log").read_text()
    assert created.returncode == 0, created.stderr
    assert dump.returncode == 0, f"mariadb-dump as the backup account failed: {dump.stderr}"
    for expected in ("INSERT INTO `patient_data`", "VIEW `patients`", "PROCEDURE `count_patients`"):
        assert expected in dump.stdout, f"the dump misses {expected}"
    assert ",CONNECT," in audit and "backup" in audit, "connections are not audited"
    assert "CREATE TABLE patient_data" in audit, "DDL is not audited"


# The image's own entrypoint and server command still run, after the chown of the log volume, and
# the container keeps only the capabilities that entrypoint needs.
def test_image_entrypoint_runs_with_minimal_capabilities(prod_recording: Recording) -> None:
    container = database_container(prod_recording)

    entrypoint = container.input("entrypoints")

    assert entrypoint[:2] == ["/bin/sh", "-c"], entrypoint
    assert entrypoint[2] == f'chown mysql:mysql {MARIADB_LOG_DIR} && exec docker-entrypoint.sh "$@"'
    assert container.input("command") == ["mariadbd"]
    assert container.input("capabilities.drops") == ["ALL"]
    assert set(container.input("capabilities.adds")) == ENTRYPOINT_CAPABILITIES
    assert container.input("healthcheck.tests")[1:] == [
        "healthcheck.sh",
        "--su-mysql",
        "--connect",
        "--innodb_initialized",
    ]


# InnoDB's page cache follows the container's memory limit instead of the 128 MiB default.
def test_buffer_pool_follows_the_memory_limit() -> None:
    small = config_options(
        render_server_config(DatabaseSettings(memory_mb=512), ServerPaths(), True)
    )
    large = config_options(
        render_server_config(DatabaseSettings(memory_mb=4096), ServerPaths(), True)
    )

    assert small["innodb_buffer_pool_size"] == "256M"
    assert large["innodb_buffer_pool_size"] == "2048M"

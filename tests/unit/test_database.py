"""MariaDB: the image contract, the rendered server config and accounts hook, and the config run
on a real MariaDB server (Debian's mariadb-server) with certificates from a throw-away CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.database import (
    ACCOUNTS_HOOK_PATH,
    AUDIT_LOG_PATH,
    BACKUP_USER,
    CAPABILITIES,
    DATA_PATH,
    IMAGE_ENV,
    LOG_PATH,
    SECRETS_DIR,
    SERVER_CONFIG_PATH,
    TLS_KEY_PATH,
    DatabaseSettings,
    HookAccounts,
    ServerPaths,
    render_accounts_hook,
    render_server_config,
)
from tools.recording import RecordedResource, Recording

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"


def database_container(recording: Recording) -> RecordedResource:
    return recording.named("database", CONTAINER)


def environment(container: RecordedResource) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in container.input("envs"))


def uploads(container: RecordedResource) -> dict[str, tuple[int, str]]:
    """Upload path -> (index, content)."""
    return {
        upload["file"]: (index, upload["content"])
        for index, upload in enumerate(container.input("uploads"))
    }


def config_lines(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.startswith("#")}


# The container sets only variables the official image reads, and no password in plain text.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_database_sets_only_variables_the_image_reads(stack: str, request) -> None:
    container = database_container(request.getfixturevalue(f"{stack}_recording"))

    names = set(environment(container))

    assert names <= IMAGE_ENV, f"{stack}: variables the image ignores: {names - IMAGE_ENV}"
    assert {"MARIADB_ROOT_PASSWORD", "MARIADB_PASSWORD"}.isdisjoint(names), (
        f"{stack}: a password is passed as a plain variable instead of a *_FILE"
    )
    assert not container.input_holds_secret("envs"), f"{stack}: no variable should be secret"


# Both password files and the TLS key reach the container as secret uploads only.
def test_password_files_and_key_are_secret_uploads(prod_recording: Recording) -> None:
    container = database_container(prod_recording)
    files = uploads(container)
    secret_files = [path for path in files if path.startswith(SECRETS_DIR)] + [TLS_KEY_PATH]

    env = environment(container)

    for variable in ("MARIADB_ROOT_PASSWORD_FILE", "MARIADB_PASSWORD_FILE"):
        assert env[variable] in files, f"{variable} names {env[variable]}, which is not uploaded"
    assert len(secret_files) == 4, f"expected root, app, backup passwords and key: {files}"
    for path in secret_files:
        index, _ = files[path]
        assert container.input_is_secret(f"uploads.{index}.content"), f"{path} is not secret"
    for path in (SERVER_CONFIG_PATH, ACCOUNTS_HOOK_PATH):
        index, _ = files[path]
        assert not container.input_is_secret(f"uploads.{index}.content"), (
            f"{path} holds no secret and should stay readable in the plan"
        )


# The database joins the data zone only and publishes nothing, in both stacks.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_database_is_never_published_and_only_on_the_data_zone(stack: str, request) -> None:
    container = database_container(request.getfixturevalue(f"{stack}_recording"))

    networks = [network["name"] for network in container.input("networksAdvanced")]

    assert not container.input("ports"), f"{stack}: database publishes {container.input('ports')}"
    assert networks == [f"hospital-{stack}-data"], f"{stack}: database joins {networks}"


# Data lives on a PHI volume at the image's data directory; the audit log on a logs volume.
def test_volumes_sit_at_the_image_paths_with_their_data_class(prod_recording: Recording) -> None:
    container = database_container(prod_recording)
    classes = {
        volume.input("name"): {label["label"]: label["value"] for label in volume.input("labels")}[
            "hospital.data-class"
        ]
        for volume in prod_recording.of_type(VOLUME)
    }

    mounted = {mount["containerPath"]: mount["volumeName"] for mount in container.input("volumes")}

    assert set(mounted) == {DATA_PATH, LOG_PATH}, f"database mounts {sorted(mounted)}"
    assert classes[mounted[DATA_PATH]] == "phi", "the data directory (and binlogs) must be phi"
    assert classes[mounted[LOG_PATH]] == "logs"
    assert AUDIT_LOG_PATH.startswith(LOG_PATH + "/"), "the audit log must land on the logs volume"


# The recorded upload is exactly what the pure renderer produces for the stack's settings.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_uploaded_server_config_is_the_rendered_one(stack: str, request) -> None:
    container = database_container(request.getfixturevalue(f"{stack}_recording"))

    _, content = uploads(container)[SERVER_CONFIG_PATH]

    expected = render_server_config(DatabaseSettings(), ServerPaths(), stack == "prod")
    assert config_lines(content)["require_secure_transport"] == ("ON" if stack == "prod" else "OFF")
    assert config_lines(content).keys() == config_lines(expected).keys()


# Prod requires TLS 1.2+ with the PKI certificate, audits DDL/DCL and keeps bounded binlogs.
def test_prod_config_holds_what_prod_requires() -> None:
    settings = DatabaseSettings(binlog_retention_days=5)

    options = config_lines(render_server_config(settings, ServerPaths(), is_prod=True))

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
    assert options["server_audit_file_path"] == AUDIT_LOG_PATH
    assert int(options["server_audit_file_rotations"]) > 0


# Dev differs from prod in exactly one option: TLS stays on but is not required.
def test_dev_config_differs_from_prod_only_in_requiring_tls() -> None:
    dev = config_lines(render_server_config(DatabaseSettings(), ServerPaths(), is_prod=False))
    prod = config_lines(render_server_config(DatabaseSettings(), ServerPaths(), is_prod=True))

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


# The alias and container name clients use are on the database certificate.
def test_database_certificate_names_what_clients_connect_to(prod_recording: Recording) -> None:
    request = prod_recording.named("pki-database", "tls:index/certRequest:CertRequest")

    names = request.input("dnsNames")

    assert "mariadb" in names and "hospital-prod-database" in names, f"SANs are {names}"


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


# The image's own entrypoint and server command still run, after the audit log chown, and the
# container keeps only the capabilities that entrypoint needs.
def test_image_entrypoint_runs_with_minimal_capabilities(prod_recording: Recording) -> None:
    container = database_container(prod_recording)

    entrypoint = container.input("entrypoints")

    assert entrypoint[:2] == ["/bin/sh", "-c"], entrypoint
    assert entrypoint[2].endswith('exec docker-entrypoint.sh "$@"'), entrypoint
    assert container.input("command") == ["mariadbd"]
    assert container.input("capabilities.drops") == ["ALL"]
    assert set(container.input("capabilities.adds")) == set(CAPABILITIES)
    assert container.input("healthcheck.tests")[1:] == [
        "healthcheck.sh",
        "--su-mysql",
        "--connect",
        "--innodb_initialized",
    ]


# InnoDB's page cache follows the container's memory limit instead of the 128 MiB default.
def test_buffer_pool_follows_the_memory_limit() -> None:
    small = config_lines(render_server_config(DatabaseSettings(memory_mb=512), ServerPaths(), True))
    large = config_lines(
        render_server_config(DatabaseSettings(memory_mb=4096), ServerPaths(), True)
    )

    assert small["innodb_buffer_pool_size"] == "256M"
    assert large["innodb_buffer_pool_size"] == "2048M"

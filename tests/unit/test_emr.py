"""OpenEMR: the openemr/openemr image's contract (variables, paths, database TLS), secrets, zones
and the site. The contract is written out here from the image's documentation (openemr-devops,
docker/openemr: OVERVIEW.md and openemr.sh), never taken from the component.
"""

from __future__ import annotations

import pytest
from cryptography import x509

from components.emr import installer_unsafe
from tools.recording import RecordedResource, Recording

STACKS = ["dev", "prod"]
CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
PASSWORD = "random:index/randomPassword:RandomPassword"
CA_CERT = "tls:index/selfSignedCert:SelfSignedCert"
LEAF_CERT = "tls:index/locallySignedCert:LocallySignedCert"

# --- the image's contract: openemr/openemr:8.0.0 ----------------------------------------------

# What openemr.sh, its auto-setup and the installer read from the environment.
OPENEMR_VARIABLES = frozenset(
    {
        "MYSQL_HOST",
        "MYSQL_PORT",
        "MYSQL_ROOT_USER",
        "MYSQL_ROOT_PASS",
        "MYSQL_USER",
        "MYSQL_PASS",
        "MYSQL_DATABASE",
        "OE_USER",
        "OE_PASS",
        "FORCE_DATABASE_SSL_CONNECT",
        "FORCE_DATABASE_X509_CONNECT",
        "MANUAL_SETUP",
        "DOMAIN",
        "EMAIL",
    }
)
# Auto-setup runs only when both are set.
AUTO_SETUP_VARIABLES = frozenset({"MYSQL_HOST", "MYSQL_ROOT_PASS"})
# The image has no *_FILE variants: these hold passwords in clear and must be secret inputs.
PASSWORD_VARIABLES = frozenset({"MYSQL_ROOT_PASS", "MYSQL_PASS", "OE_PASS"})
# The image's defaults for its first administrator: what nobody may keep.
DEFAULT_ADMIN = ("admin", "pass")
# The site directory (sqlconf.php, keys, patient documents) and Apache's and PHP's logs.
SITES_DIR = "/var/www/localhost/htdocs/openemr/sites"
LOG_DIR = "/var/log"
# openemr.sh copies this file into sites/default/documents/certificates/mysql-ca, the CA that
# OpenEMR then verifies the database's certificate against.
DATABASE_CA_FILE = "/root/certs/mysql/server/mysql-ca"
# The port MariaDB listens on; the database's config does not change it.
MARIADB_PORT = 3306


def container(recording: Recording, name: str) -> RecordedResource:
    return recording.named(name, CONTAINER)


def environment(resource: RecordedResource) -> dict[str, tuple[int, str]]:
    """Variable -> (index in envs, value)."""
    return {
        entry.split("=", 1)[0]: (index, entry.split("=", 1)[1])
        for index, entry in enumerate(resource.input("envs"))
    }


def variable_values(resource: RecordedResource) -> dict[str, str]:
    return {name: value for name, (_, value) in environment(resource).items()}


def upload_contents(resource: RecordedResource) -> dict[str, str]:
    return {item["file"]: item["content"] for item in resource.input("uploads")}


def account_passwords(recording: Recording) -> dict[str, str]:
    return {
        password.input("keepers")["account"]: password.output("result")
        for password in recording.of_type(PASSWORD)
    }


# The EMR sets only variables the image reads, both that auto-setup needs, and no global override.
@pytest.mark.parametrize("stack", STACKS)
def test_emr_sets_only_variables_the_image_documents(stack: str, request) -> None:
    emr = container(request.getfixturevalue(f"{stack}_recording"), "emr")

    names = set(environment(emr))

    undocumented = sorted(names - OPENEMR_VARIABLES)
    assert not undocumented, f"{stack}: variables openemr/openemr ignores: {undocumented}"
    assert names >= AUTO_SETUP_VARIABLES, f"{stack}: without both the image skips auto-setup"
    assert not any(name.startswith("OPENEMR_SETTING_") for name in names), (
        "OPENEMR_SETTING_* is applied with `mariadb --skip-ssl`, which a TLS-only database refuses"
    )


# Exactly the password variables are secret inputs; every other variable stays plain.
@pytest.mark.parametrize("stack", STACKS)
def test_only_the_passwords_are_secret(stack: str, request) -> None:
    emr = container(request.getfixturevalue(f"{stack}_recording"), "emr")

    secret = {
        name
        for name, (index, _) in environment(emr).items()
        if emr.input_is_secret(f"envs.{index}")
    }

    assert secret == PASSWORD_VARIABLES, f"{stack}: secret variables are {sorted(secret)}"


# The EMR dials the database container by one of its names on a zone both join, at MariaDB's port,
# with the schema and account MariaDB creates and that account's password; never with root's.
@pytest.mark.parametrize("stack", STACKS)
def test_emr_reaches_the_database_the_way_mariadb_is_set_up(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    emr, database = container(recording, "emr"), container(recording, "database")
    database_env = dict(entry.split("=", 1) for entry in database.input("envs"))
    database_files = {f.file: f.content for f in recording.uploaded_files(database)}
    emr_zones = {network["name"] for network in emr.input("networksAdvanced")}

    variables = variable_values(emr)

    reachable = {
        alias
        for network in database.input("networksAdvanced")
        if network["name"] in emr_zones
        for alias in network["aliases"]
    }
    assert variables["MYSQL_HOST"] in reachable, f"{stack}: MYSQL_HOST is not in {reachable}"
    assert variables["MYSQL_PORT"] == str(MARIADB_PORT), f"{stack}: wrong database port"
    assert variables["MYSQL_DATABASE"] == database_env["MARIADB_DATABASE"], f"{stack}: schema"
    assert variables["MYSQL_USER"] == database_env["MARIADB_USER"], f"{stack}: account"
    assert variables["MYSQL_ROOT_USER"] == variables["MYSQL_USER"], "setup logs in as the account"
    # Compared as booleans: a failure must not print the passwords.
    app_password = database_files[database_env["MARIADB_PASSWORD_FILE"]]
    root_password = database_files[database_env["MARIADB_ROOT_PASSWORD_FILE"]]
    holds_app = variables["MYSQL_PASS"] == app_password
    assert holds_app, f"{stack}: MYSQL_PASS is not the application account's password"
    holds_root = root_password in variables.values()
    assert not holds_root, f"{stack}: the database root password reaches the EMR"


# The first administrator is not the image's default one, and its password is the generated one.
@pytest.mark.parametrize("stack", STACKS)
def test_emr_administrator_is_not_the_images_default(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")

    variables = variable_values(container(recording, "emr"))

    assert variables["OE_USER"] != DEFAULT_ADMIN[0], f"{stack}: the image's default admin name"
    is_default = variables["OE_PASS"] in ("", DEFAULT_ADMIN[1])
    assert not is_default, f"{stack}: the image's default admin password"
    is_generated = variables["OE_PASS"] == account_passwords(recording)["emr-admin"]
    assert is_generated, f"{stack}: OE_PASS is not the generated emr-admin password"


# The database CA is the only upload, at the path openemr.sh copies it from, and it is the CA that
# signed the certificate the database presents; TLS to the database is asked for.
@pytest.mark.parametrize("stack", STACKS)
def test_database_tls_is_configured_the_way_the_image_reads_it(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    emr = container(recording, "emr")
    database_pem = recording.named("pki-database", LEAF_CERT).output("certPem")

    uploads = upload_contents(emr)

    assert list(uploads) == [DATABASE_CA_FILE], f"{stack}: EMR uploads {sorted(uploads)}"
    ca = x509.load_pem_x509_certificate(uploads[DATABASE_CA_FILE].encode())
    x509.load_pem_x509_certificate(database_pem.encode()).verify_directly_issued_by(ca)
    assert uploads[DATABASE_CA_FILE] == recording.named("pki-ca", CA_CERT).output("certPem")
    assert variable_values(emr)["FORCE_DATABASE_SSL_CONNECT"] == "1", f"{stack}: TLS is not forced"


# Site data is PHI on its own volume, logs on a logs volume, both at the image's paths, and
# nothing else is mounted (not the whole htdocs: the image's upgrades depend on it).
@pytest.mark.parametrize("stack", STACKS)
def test_volumes_sit_at_the_images_paths(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    classes = {
        volume.input("name"): {item["label"]: item["value"] for item in volume.input("labels")}[
            "hospital.data-class"
        ]
        for volume in recording.of_type(VOLUME)
    }

    mounted = {
        m["containerPath"]: m["volumeName"] for m in container(recording, "emr").input("volumes")
    }

    assert set(mounted) == {SITES_DIR, LOG_DIR}, f"{stack}: EMR mounts {sorted(mounted)}"
    assert classes[mounted[SITES_DIR]] == "phi", f"{stack}: the site directory holds PHI"
    assert classes[mounted[LOG_DIR]] == "logs", f"{stack}: /var/log is a logs volume"


# The EMR sits on the clinical zone (for the gateway) and the data zone, publishing nothing.
@pytest.mark.parametrize("stack", STACKS)
def test_emr_zones_and_no_published_port(stack: str, request) -> None:
    emr = container(request.getfixturevalue(f"{stack}_recording"), "emr")

    networks = [network["name"] for network in emr.input("networksAdvanced")]

    assert networks == [f"hospital-{stack}-clinical", f"hospital-{stack}-data"], networks
    assert not emr.input("ports"), f"{stack}: EMR publishes {emr.input('ports')}"


# The EMR waits for a healthy database, and its own first setup gets time to finish.
def test_emr_waits_for_the_database_and_for_its_first_setup(prod_recording: Recording) -> None:
    emr, database = container(prod_recording, "emr"), container(prod_recording, "database")

    start_period = emr.input("healthcheck.startPeriod")

    assert database.urn in emr.dependencies, "the EMR does not depend on the database container"
    assert database.input("wait") is True, "pulumi does not wait for the database to be healthy"
    assert start_period.endswith("m") and int(start_period[:-1]) >= 10, start_period
    assert emr.input("waitTimeout") >= int(start_period[:-1]) * 60
    assert "curl" in emr.input("healthcheck.tests")


# The staff endpoint is https on the gateway's port for the EMR's public name.
@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        ("dev", "https://emr.hospital.localhost:8443/"),
        ("prod", "https://emr.hospital.example.org/"),
    ],
)
def test_emr_endpoint_is_the_gateway_url(stack: str, expected: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")

    assert recording.export("endpoints")["emr"] == expected


# Characters that OpenEMR's installer splits arguments at are recognised in an alphabet.
def test_installer_unsafe_characters_are_found() -> None:
    assert installer_unsafe("-_.~+=") == {"="}
    assert installer_unsafe("-_.~") == frozenset()

"""OpenEMR: the image contract (variables, paths, database TLS), secrets, zones and the site."""

from __future__ import annotations

import pytest

from components.database import APP_PASSWORD_PATH, ROOT_PASSWORD_PATH
from components.emr import (
    DATABASE_CA_PATH,
    IGNORED_ENV,
    IMAGE_ENV,
    LOG_PATH,
    SECRET_ENV,
    SITES_PATH,
    installer_unsafe,
)
from tools.recording import RecordedResource, Recording

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"


def container(recording: Recording, name: str) -> RecordedResource:
    return recording.named(name, CONTAINER)


def environment(resource: RecordedResource) -> dict[str, tuple[int, str]]:
    """Variable -> (index in envs, value)."""
    return {
        entry.split("=", 1)[0]: (index, entry.split("=", 1)[1])
        for index, entry in enumerate(resource.input("envs"))
    }


def upload(resource: RecordedResource, path: str) -> str:
    contents = {item["file"]: item["content"] for item in resource.input("uploads")}
    assert path in contents, f"{path} is not uploaded into {resource.name}"
    return contents[path]


# The EMR sets only variables the image reads, none the guide invented, and no global override.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_emr_sets_only_variables_the_image_reads(stack: str, request) -> None:
    emr = container(request.getfixturevalue(f"{stack}_recording"), "emr")

    names = set(environment(emr))

    assert names <= IMAGE_ENV, f"{stack}: variables the image ignores: {names - IMAGE_ENV}"
    assert names.isdisjoint(IGNORED_ENV), f"{stack}: guide-only names: {names & IGNORED_ENV}"
    assert not any(name.startswith("OPENEMR_SETTING_") for name in names), (
        "OPENEMR_SETTING_* is applied with `mariadb --skip-ssl`, which a TLS-only database refuses"
    )
    assert {"MYSQL_HOST", "MYSQL_ROOT_PASS"} <= names, "without both the image skips auto-setup"


# Exactly the three passwords are secret inputs; every other variable stays plain.
def test_only_the_passwords_are_secret(prod_recording: Recording) -> None:
    emr = container(prod_recording, "emr")

    secret = {
        name
        for name, (index, _) in environment(emr).items()
        if emr.input_is_secret(f"envs.{index}")
    }

    assert secret == SECRET_ENV, f"secret variables are {secret}, expected {SECRET_ENV}"


# OpenEMR reaches the database with the application account and never holds the root password.
def test_emr_never_receives_the_database_root_password(prod_recording: Recording) -> None:
    emr, database = container(prod_recording, "emr"), container(prod_recording, "database")
    variables = {name: value for name, (_, value) in environment(emr).items()}

    root_password = upload(database, ROOT_PASSWORD_PATH)
    app_password = upload(database, APP_PASSWORD_PATH)

    assert root_password not in variables.values(), "the database root password reaches the EMR"
    assert variables["MYSQL_PASS"] == app_password, "MYSQL_PASS is not the app account password"
    assert variables["MYSQL_ROOT_USER"] == variables["MYSQL_USER"]
    assert variables["MYSQL_HOST"] == "mariadb"
    assert variables["OE_PASS"] not in ("", "pass"), "the image's default admin password is used"


# The database CA lands where openemr.sh copies it from, and TLS is asked for.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_database_tls_is_configured_the_way_the_image_reads_it(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    emr = container(recording, "emr")
    ca = recording.named("pki-ca", "tls:index/selfSignedCert:SelfSignedCert").output("certPem")

    uploaded_ca = upload(emr, DATABASE_CA_PATH)

    assert uploaded_ca == ca, "the uploaded CA is not the one that signs the database certificate"
    assert environment(emr)["FORCE_DATABASE_SSL_CONNECT"][1] == "1"


# Site data is PHI on its own volume, logs on a logs volume, both at the image's paths.
def test_volumes_sit_at_the_image_paths(prod_recording: Recording) -> None:
    emr = container(prod_recording, "emr")
    classes = {
        volume.input("name"): {item["label"]: item["value"] for item in volume.input("labels")}[
            "hospital.data-class"
        ]
        for volume in prod_recording.of_type(VOLUME)
    }

    mounted = {mount["containerPath"]: mount["volumeName"] for mount in emr.input("volumes")}

    assert set(mounted) == {SITES_PATH, LOG_PATH}, f"EMR mounts {sorted(mounted)}"
    assert classes[mounted[SITES_PATH]] == "phi"
    assert classes[mounted[LOG_PATH]] == "logs"


# The EMR sits on the clinical zone (for the gateway) and the data zone, publishing nothing.
@pytest.mark.parametrize("stack", ["dev", "prod"])
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

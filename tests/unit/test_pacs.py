"""Orthanc under the offline preview: the image contract, the rendered JSON files and exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from components.pacs import (
    CONFIG_DIR,
    DATA_MOUNT,
    DICOM_CONTAINER_PORT,
    ORTHANC_KEYS,
    PROBE,
    STORAGE_DIRECTORY,
    USER_NAMES,
    PacsSettings,
    duplicate_keys,
    key_paths,
    render_credentials,
    render_orthanc_config,
)
from components.settings import SettingsError, validate_settings
from tools.preview import run_program
from tools.recording import Recording

REPO = Path(__file__).resolve().parents[2]
CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
STACKS = ["dev", "prod"]


def pacs_container(recording: Recording):
    return recording.named("pacs", CONTAINER)


def orthanc_files(recording: Recording) -> dict[str, dict]:
    """Every uploaded /etc/orthanc/*.json, parsed, by file name."""
    uploads = pacs_container(recording).input("uploads")
    return {
        Path(upload["file"]).name: json.loads(upload["content"])
        for upload in uploads
        if upload["file"].startswith(f"{CONFIG_DIR}/") and upload["file"].endswith(".json")
    }


def upload_index(recording: Recording, path: str) -> int:
    files = [upload["file"] for upload in pacs_container(recording).input("uploads")]
    assert path in files, f"{path} is not uploaded; uploads: {files}"
    return files.index(path)


def stack_with(tmp_path: Path, stack: str, **pacs_changes) -> Path:
    """A copy of a committed stack file with keys of `hospital:pacs` replaced."""
    document = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    document["config"]["hospital:pacs"].update(pacs_changes)
    stack_file = tmp_path / f"Pulumi.{stack}.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    return stack_file


@pytest.fixture(scope="module")
def tls_recording(tmp_path_factory) -> Recording:
    """The prod stack with DICOM TLS on and every modality speaking TLS."""
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    pacs = document["config"]["hospital:pacs"]
    pacs["dicomTls"] = True
    for modality in pacs["modalities"].values():
        modality["tls"] = True
    stack_file = tmp_path_factory.mktemp("tls") / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    return run_program("prod", stack_file)


# Each uploaded Orthanc file is a JSON object; Orthanc would refuse to start otherwise.
@pytest.mark.parametrize("stack", STACKS)
def test_rendered_orthanc_files_parse(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    files = orthanc_files(recording)

    assert {"orthanc.json", "dicom.json", "dicomweb.json", "credentials.json"} <= set(files)
    assert all(isinstance(document, dict) for document in files.values()), files


# Orthanc refuses to start when two files in its directory define the same key.
@pytest.mark.parametrize("stack", STACKS)
def test_no_key_is_defined_in_two_orthanc_files(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    clashes = duplicate_keys(orthanc_files(recording))

    assert clashes == {}, f"keys defined in several files: {clashes}"


# The same holds with DICOM TLS, which adds a file.
def test_dicom_tls_file_adds_no_duplicate_key(tls_recording: Recording) -> None:
    files = orthanc_files(tls_recording)

    clashes = duplicate_keys(files)

    assert "dicom-tls.json" in files, sorted(files)
    assert clashes == {}, f"keys defined in several files: {clashes}"


# The duplicate detector itself notices a clash (so the two tests above can fail).
def test_duplicate_detector_reports_a_key_in_two_files() -> None:
    files = {"a.json": {"DicomAet": "A", "HttpPort": 1}, "b.json": {"DicomAet": "B"}}

    clashes = duplicate_keys(files)

    assert clashes == {"DicomAet": ["a.json", "b.json"]}, clashes


# Orthanc ignores unknown keys silently; every rendered key must be a documented one.
@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_key_is_a_known_orthanc_key(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    unknown = {
        file_name: sorted(set(key_paths(document)) - set(ORTHANC_KEYS))
        for file_name, document in orthanc_files(recording).items()
    }

    assert not any(unknown.values()), f"keys outside the allow-list: {unknown}"


# The DICOM TLS keys are known keys too.
def test_dicom_tls_keys_are_known(tls_recording: Recording) -> None:
    document = orthanc_files(tls_recording)["dicom-tls.json"]

    unknown = set(key_paths(document)) - set(ORTHANC_KEYS)

    assert not unknown, f"keys outside the allow-list: {sorted(unknown)}"


# The image runs envsubst over every config file: a `$` would be replaced before Orthanc reads it.
@pytest.mark.parametrize("stack", STACKS)
def test_rendered_files_survive_the_images_variable_substitution(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    uploads = pacs_container(recording).input("uploads")

    with_dollar = [
        u["file"] for u in uploads if u["file"].endswith(".json") and "$" in u["content"]
    ]
    assert with_dollar == [], f"files the entrypoint's envsubst would alter: {with_dollar}"


# Environment names must be ones the image reads: ORTHANC__ names in UPPER_SNAKE only, and
# none that makes the entrypoint print the merged configuration (passwords) into the logs.
@pytest.mark.parametrize("stack", STACKS)
def test_environment_follows_the_image_contract(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    names = {line.split("=", 1)[0] for line in pacs_container(recording).input("envs", [])}

    mixed_case = [n for n in names if n.startswith("ORTHANC") and not re.fullmatch(r"[A-Z_]+", n)]
    assert mixed_case == [], f"mixed-case Orthanc variables are silently renamed: {mixed_case}"
    assert not names & {"VERBOSE_STARTUP", "BUNDLE_DEBUG"}, f"config dump enabled: {names}"
    assert "TCP_NODELAY" in names, f"DCMTK would stall on Nagle's algorithm: {names}"


# Prod refuses unknown peers and checks who calls; dev must still let the lab's SCU through
# Docker's loopback proxy, which hides the peer's address.
def test_prod_dicom_server_accepts_only_configured_modalities(prod_recording: Recording) -> None:
    dicom = orthanc_files(prod_recording)["dicom.json"]

    assert dicom["DicomAlwaysAllowStore"] is False, dicom
    assert dicom["DicomAlwaysAllowEcho"] is False, dicom
    assert dicom["DicomCheckModalityHost"] is True, dicom
    assert dicom["DicomCheckCalledAet"] is True, dicom
    assert dicom["DicomModalitiesInDatabase"] is False, dicom


def test_dev_dicom_server_checks_titles_but_not_hosts(dev_recording: Recording) -> None:
    dicom = orthanc_files(dev_recording)["dicom.json"]

    assert dicom["DicomAlwaysAllowStore"] is False, dicom
    assert dicom["DicomCheckCalledAet"] is True, dicom
    assert dicom["DicomCheckModalityHost"] is False, dicom


# Each modality gets exactly the DICOM services its settings allow, spelled out.
def test_modalities_carry_their_permissions(prod_recording: Recording) -> None:
    modalities = orthanc_files(prod_recording)["dicom.json"]["DicomModalities"]

    ct, reading = modalities["CT1"], modalities["READING1"]

    assert (ct["AET"], ct["Host"], ct["Port"]) == ("CT1", "10.40.1.21", 104), ct
    assert ct["AllowStore"] and ct["AllowEcho"], ct
    assert not (ct["AllowFind"] or ct["AllowMove"] or ct["AllowGet"]), ct
    assert reading["AllowFind"] and reading["AllowMove"] and not reading["AllowStore"], reading
    assert ct["UseDicomTls"] is False, ct


# Authentication is on with the three generated users; their passwords travel as a secret file.
@pytest.mark.parametrize("stack", STACKS)
def test_authentication_uses_generated_users_in_a_secret_file(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    files = orthanc_files(recording)
    index = upload_index(recording, f"{CONFIG_DIR}/credentials.json")

    users = files["credentials.json"]["RegisteredUsers"]

    assert files["orthanc.json"]["AuthenticationEnabled"] is True
    assert set(users) == set(USER_NAMES.values()), users
    assert len(set(users.values())) == 3, "each user needs a password of its own"
    assert pacs_container(recording).input_is_secret(f"uploads.{index}.content")
    assert not any(
        "RegisteredUsers" in document
        for name, document in files.items()
        if name != "credentials.json"
    )


# Storage and index live on a PHI-labelled volume mounted where the storage directory is.
def test_storage_lives_on_a_phi_volume(prod_recording: Recording) -> None:
    container = pacs_container(prod_recording)
    settings = orthanc_files(prod_recording)["orthanc.json"]
    volume = prod_recording.named("pacs-storage", VOLUME)
    labels = {item["label"]: item["value"] for item in volume.input("labels")}

    mounts = {m["containerPath"]: m["volumeName"] for m in container.input("volumes")}

    assert mounts == {DATA_MOUNT: volume.input("name")}, mounts
    assert settings["StorageDirectory"] == settings["IndexDirectory"] == STORAGE_DIRECTORY
    assert STORAGE_DIRECTORY.startswith(DATA_MOUNT + "/")
    assert labels["hospital.data-class"] == "phi", labels


# The DICOM port is published once, on the DICOM address, and nothing else of Orthanc is.
@pytest.mark.parametrize("stack", STACKS)
def test_dicom_port_is_published_only_on_the_dicom_address(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    configured = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]

    ports = pacs_container(recording).input("ports")

    assert ports == [
        {
            "ip": configured["hospital:addresses"]["dicom"],
            "external": configured["hospital:pacs"]["dicomPort"],
            "internal": DICOM_CONTAINER_PORT,
            "protocol": "tcp",
        }
    ], ports


# No container of prod binds a port to every interface.
def test_prod_binds_no_port_to_all_interfaces(prod_recording: Recording) -> None:
    bound = [
        (c.name, port.get("ip"))
        for c in prod_recording.of_type(CONTAINER)
        for port in c.input("ports", []) or []
    ]

    assert bound, "prod publishes nothing at all"
    assert all(ip not in (None, "", "0.0.0.0") for _, ip in bound), bound


# Modalities find the PACS through the `dicom` export; staff through the https endpoint.
def test_exports_name_the_dicom_and_https_endpoints(prod_recording: Recording) -> None:
    dicom = prod_recording.export("dicom")

    assert dicom["endpoint"] == "ORTHANC@10.40.1.10:4242", dicom
    assert (dicom["aet"], dicom["host"], dicom["port"], dicom["tls"]) == (
        "ORTHANC",
        "10.40.1.10",
        4242,
        False,
    ), dicom
    assert prod_recording.export("endpoints")["pacs"] == "https://pacs.hospital.example.org/"
    assert dicom["modalities"]["CT1"] == {
        "aet": "CT1",
        "host": "10.40.1.21",
        "port": 104,
        "allow": ["echo", "store"],
        "tls": False,
    }, dicom["modalities"]
    committed = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"]
    assert sorted(dicom["modalities"]) == sorted(committed["hospital:pacs"]["modalities"])


# The ports export lists Orthanc's DICOM port as generated from the container.
def test_ports_export_lists_the_dicom_port(prod_recording: Recording) -> None:
    rows = [row for row in prod_recording.export("ports") if row["service"] == "pacs"]

    assert [(r["address"], r["hostPort"], r["containerPort"]) for r in rows] == [
        ("10.40.1.10", 4242, DICOM_CONTAINER_PORT)
    ], rows


# Health comes from the image's own probe, which finds the password itself: none on the line.
@pytest.mark.parametrize("stack", STACKS)
def test_health_check_uses_the_images_probe(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    test = pacs_container(recording).input("healthcheck.tests")

    assert test[:3] == ["CMD", "python3", PROBE], test
    assert not any(part.startswith("--pwd") for part in test), test


# Orthanc runs as the image's unprivileged user with every capability dropped.
def test_orthanc_runs_unprivileged(prod_recording: Recording) -> None:
    container = pacs_container(prod_recording)

    assert container.input("user") == "999:999"
    assert container.input("capabilities") == {"drops": ["ALL"]}, container.input("capabilities")
    assert DICOM_CONTAINER_PORT > 1024


# The PACS sits on the clinical zone only (modalities arrive through the published port).
def test_orthanc_joins_only_the_clinical_zone(prod_recording: Recording) -> None:
    networks = [n["name"] for n in pacs_container(prod_recording).input("networksAdvanced")]

    assert networks == ["hospital-prod-clinical"], networks


# DICOMweb is on, rooted where the gateway publishes it.
def test_dicomweb_is_served_at_the_public_root(prod_recording: Recording) -> None:
    dicomweb = orthanc_files(prod_recording)["dicomweb.json"]["DicomWeb"]

    assert dicomweb["Enable"] is True
    assert dicomweb["Root"] == dicomweb["PublicRoot"] == "/dicom-web/", dicomweb


# DICOM TLS: a PKI certificate for Orthanc, its key as a secret file, TLS for each modality.
def test_dicom_tls_uses_a_pki_certificate(tls_recording: Recording) -> None:
    files = orthanc_files(tls_recording)
    tls = files["dicom-tls.json"]
    container = pacs_container(tls_recording)
    key_index = upload_index(tls_recording, tls["DicomTlsPrivateKey"])
    upload_index(tls_recording, tls["DicomTlsCertificate"])
    upload_index(tls_recording, tls["DicomTlsTrustedCertificates"])

    modalities = files["dicom.json"]["DicomModalities"]

    assert tls["DicomTlsEnabled"] is True and tls["DicomTlsRemoteCertificateRequired"] is True
    assert container.input_is_secret(f"uploads.{key_index}.content"), "TLS key is not secret"
    assert all(entry["UseDicomTls"] for entry in modalities.values()), modalities
    assert tls_recording.export("dicom")["tls"] is True


# A modality cannot ask for TLS while Orthanc's port is plain, nor stay plain on a TLS port.
@pytest.mark.parametrize(
    ("dicom_tls", "modality_tls", "message"),
    [(False, True, "needs dicomTls"), (True, False, "TLS associations only")],
)
def test_dicom_tls_is_all_or_nothing(dicom_tls: bool, modality_tls: bool, message: str) -> None:
    raw = {
        "dicomTls": dicom_tls,
        "modalities": {"CT1": {"aet": "CT1", "host": "10.0.0.5", "tls": modality_tls}},
    }

    with pytest.raises(ValidationError) as error:
        PacsSettings.model_validate(raw)

    assert message in str(error.value), str(error.value)


# The credentials renderer writes exactly the users it is given.
def test_credentials_file_holds_only_registered_users() -> None:
    document = render_credentials({"b": "2", "a": "1"})

    assert document == {"RegisteredUsers": {"a": "1", "b": "2"}}


# Rendering is pure: the same settings give the same files.
def test_rendering_is_repeatable() -> None:
    settings = PacsSettings(modalities={"CT1": {"aet": "CT1", "host": "10.0.0.5"}})

    first = render_orthanc_config(settings, is_prod=True)
    second = render_orthanc_config(settings, is_prod=True)

    assert first == second


# The stack error names the key an operator must edit.
def test_tls_mismatch_names_the_modalities_key() -> None:
    configured = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"]
    raw = {key.split(":", 1)[1]: value for key, value in configured.items()}
    raw["pacs"]["modalities"]["CT1"]["tls"] = True

    with pytest.raises(SettingsError) as error:
        validate_settings(raw)

    assert [problem.key for problem in error.value.problems] == ["hospital:pacs.modalities"]
    assert "CT1" in error.value.problems[0].rule, error.value.problems[0].rule

"""Orthanc under the offline preview: the image contract, the rendered JSON files and exports.
The contract (documented keys, variables, paths) is written out here from Orthanc's own
documentation, never taken from the component.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from components.pacs import (
    ORTHANC_KEYS,
    PacsSettings,
    duplicate_keys,
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
RECORDINGS = ["dev_recording", "prod_recording", "tls_recording"]

# --- the image's contract: orthancteam/orthanc (Orthanc 1.12) ---------------------------------

# Orthanc's documented settings this stack may write, with the JSON type each takes. Sources:
# OrthancServer/Resources/Configuration.json (the annotated reference configuration, which also
# documents the DICOM TLS options), and the Orthanc book's DICOMweb plugin page for the DicomWeb
# section. `*` stands for a name the operator chooses: a modality, a user. Orthanc ignores an
# unknown key without a word, so a key outside this table is a safeguard silently off.
ORTHANC_DOCUMENTED_KEYS: Mapping[str, type | tuple[type, ...]] = {
    "Name": str,
    "StorageDirectory": str,
    "IndexDirectory": str,
    "StorageCompression": bool,
    "MaximumStorageSize": int,
    "MaximumPatientCount": int,
    "SyncStorageArea": bool,
    "LuaScripts": list,
    "Plugins": list,
    "ConcurrentJobs": int,
    "HttpServerEnabled": bool,
    "OrthancExplorerEnabled": bool,
    "HttpPort": int,
    "HttpDescribeErrors": bool,
    "HttpCompressionEnabled": bool,
    "HttpThreadsCount": int,
    "KeepAlive": bool,
    "KeepAliveTimeout": int,
    "TcpNoDelay": bool,
    "WebDavEnabled": bool,
    "RemoteAccessAllowed": bool,
    "SslEnabled": bool,
    "SslCertificate": str,
    "AuthenticationEnabled": bool,
    "RegisteredUsers": dict,
    "RegisteredUsers.*": str,
    "ExecuteLuaEnabled": bool,
    "DeidentifyLogs": bool,
    "DicomServerEnabled": bool,
    "DicomAet": str,
    "DicomPort": int,
    "DicomCheckCalledAet": bool,
    "DicomCheckModalityHost": bool,
    "DicomAlwaysAllowEcho": bool,
    "DicomAlwaysAllowStore": bool,
    "DicomAlwaysAllowFind": bool,
    "DicomAlwaysAllowGet": bool,
    "DicomAlwaysAllowMove": bool,
    "DicomScpTimeout": int,
    "DicomScuTimeout": int,
    "DicomModalitiesInDatabase": bool,
    "DicomModalities": dict,
    "DicomModalities.*": (dict, list),
    "DicomModalities.*.AET": str,
    "DicomModalities.*.Host": str,
    "DicomModalities.*.Port": int,
    "DicomModalities.*.Manufacturer": str,
    "DicomModalities.*.AllowEcho": bool,
    "DicomModalities.*.AllowFind": bool,
    "DicomModalities.*.AllowFindWorklist": bool,
    "DicomModalities.*.AllowGet": bool,
    "DicomModalities.*.AllowMove": bool,
    "DicomModalities.*.AllowStore": bool,
    "DicomModalities.*.AllowStorageCommitment": bool,
    "DicomModalities.*.AllowTranscoding": bool,
    "DicomModalities.*.UseDicomTls": bool,
    "DicomModalities.*.LocalAet": str,
    "DicomModalities.*.Timeout": int,
    "DicomTlsEnabled": bool,
    "DicomTlsCertificate": str,
    "DicomTlsPrivateKey": str,
    "DicomTlsTrustedCertificates": str,
    "DicomTlsRemoteCertificateRequired": bool,
    "DicomWeb": dict,
    "DicomWeb.Enable": bool,
    "DicomWeb.Root": str,
    "DicomWeb.PublicRoot": str,
    "DicomWeb.EnableWado": bool,
    "DicomWeb.WadoRoot": str,
    "DicomWeb.Ssl": bool,
    "DicomWeb.Host": str,
}
# Sections keyed by names the operator chooses.
NAMED_ENTRY_SECTIONS = frozenset({"DicomModalities", "RegisteredUsers"})
# Keys an older deployment guide used that Orthanc does not have.
GUIDE_ONLY_KEYS = frozenset({"HttpsCertificate", "HttpsKey"})

# The image's own variables (Orthanc book, "orthancteam/orthanc Docker images") besides
# ORTHANC__<SECTION>__<KEY> and <PLUGIN>_PLUGIN_ENABLED, and DCMTK's (DCMTK's envvars.txt,
# dcmnet), which Orthanc's DICOM layer reads.
ORTHANC_IMAGE_VARIABLES = frozenset(
    {
        "VERBOSE_ENABLED",
        "VERBOSE_STARTUP",
        "TRACE_ENABLED",
        "NO_JOBS",
        "UNLOCK",
        "LOGDIR",
        "LOGFILE",
        "MALLOC_ARENA_MAX",
        "ORTHANC_JSON",
        "BEFORE_ORTHANC_STARTUP_SCRIPT",
    }
)
DCMTK_VARIABLES = frozenset({"TCP_NODELAY", "TCP_BUFFER_LENGTH", "DCMDICTPATH"})
# The image reads ORTHANC__ names only in UPPER_SNAKE: `ORTHANC__DicomAet` becomes `Dicomaet`.
ORTHANC_SETTING_VARIABLE = re.compile(r"ORTHANC__[A-Z0-9]+(?:__?[A-Z0-9]+)*")
PLUGIN_SWITCH_VARIABLE = re.compile(r"[A-Z0-9_]+_PLUGIN_ENABLED")
# Makes the entrypoint print the merged configuration, passwords included, into the log.
CONFIG_DUMP_VARIABLE = "VERBOSE_STARTUP"

# The image merges every *.json of this directory; Orthanc stores there by default, the image's
# probe reads its port and credentials from the merged file, and it listens on these ports.
ORTHANC_CONFIG_DIR = PurePosixPath("/etc/orthanc")
ORTHANC_STORAGE_DIR = "/var/lib/orthanc/db"
ORTHANC_PROBE = "/probes/test-aliveness.py"
ORTHANC_DICOM_PORT = 4242
ORTHANC_HTTP_PORT = 8042
# The stack mounts the storage directory's parent: the image creates it owned by its `orthanc`
# user (uid 999), and Docker copies that ownership into a fresh volume mounted there.
ORTHANC_DATA_MOUNT = "/var/lib/orthanc"
ORTHANC_USER = "999:999"


def pacs_container(recording: Recording):
    return recording.named("pacs", CONTAINER)


def orthanc_files(recording: Recording) -> dict[str, dict]:
    """Every uploaded /etc/orthanc/*.json, parsed, by file name."""
    uploads = pacs_container(recording).input("uploads")
    return {
        PurePosixPath(upload["file"]).name: json.loads(upload["content"])
        for upload in uploads
        if PurePosixPath(upload["file"]).parent == ORTHANC_CONFIG_DIR
        and upload["file"].endswith(".json")
    }


def upload_index(recording: Recording, path: str) -> int:
    files = [upload["file"] for upload in pacs_container(recording).input("uploads")]
    assert path in files, f"{path} is not uploaded; uploads: {files}"
    return files.index(path)


def setting_paths(document: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every setting of an Orthanc document as (dotted path, value), nested sections included;
    names chosen by the operator (modalities, users) are written `*`."""
    for key, value in document.items():
        path = f"{prefix}{key}"
        yield path, value
        if isinstance(value, dict) and path in NAMED_ENTRY_SECTIONS:
            for entry in value.values():
                yield f"{path}.*", entry
                if isinstance(entry, dict):
                    yield from setting_paths(entry, f"{path}.*.")
        elif isinstance(value, dict):
            yield from setting_paths(value, f"{path}.")


def undocumented_settings(document: Mapping[str, Any]) -> list[str]:
    """Settings of a document outside the documented table or of another type (names only: a
    value may be a password)."""
    problems = []
    for path, value in setting_paths(document):
        expected = ORTHANC_DOCUMENTED_KEYS.get(path)
        if expected is None:
            problems.append(f"{path} is not a documented Orthanc setting")
        elif not _is_of_type(value, expected):
            names = "/".join(kind.__name__ for kind in _types(expected))
            problems.append(f"{path} is a {type(value).__name__}, Orthanc reads a {names}")
    return problems


def setting_of_variable(name: str) -> str:
    """The setting an ORTHANC__ variable sets, as the image converts it."""
    sections = name.removeprefix("ORTHANC__").split("__")
    return ".".join("".join(word.title() for word in section.split("_")) for section in sections)


def _types(expected: type | tuple[type, ...]) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def _is_of_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    # Exact types: JSON true is no number to Orthanc, though bool is an int to Python.
    return type(value) in _types(expected)


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


# Every rendered setting, nested sections and modality entries included, is one Orthanc
# documents, with the type Orthanc reads; none is a key the guide made up.
@pytest.mark.parametrize("recording_name", RECORDINGS)
def test_every_rendered_setting_is_a_documented_orthanc_key(recording_name: str, request) -> None:
    recording: Recording = request.getfixturevalue(recording_name)

    problems = {
        file_name: undocumented_settings(document)
        for file_name, document in orthanc_files(recording).items()
    }

    assert not any(problems.values()), f"{recording_name}: {problems}"
    used = {
        path
        for document in orthanc_files(recording).values()
        for path, _ in setting_paths(document)
    }
    assert not used & GUIDE_ONLY_KEYS, f"{recording_name}: keys Orthanc does not have"


# The walk above reaches into sections and modality entries, so a misspelt nested key fails it.
def test_setting_walk_reports_nested_unknown_keys() -> None:
    document = {
        "DicomWeb": {"Enabled": True},
        "DicomModalities": {"CT1": {"AET": "CT1", "AllowEchoes": True}},
        "RegisteredUsers": {"admin": 1},
        "HttpPort": True,
    }

    problems = undocumented_settings(document)

    assert len(problems) == 4, problems
    assert any(problem.startswith("DicomWeb.Enabled ") for problem in problems), problems
    assert any(p.startswith("DicomModalities.*.AllowEchoes ") for p in problems), problems


# The component's own table of keys (which it checks its renderers against) holds only documented
# keys: a made-up key there would let a made-up key through the component's own check.
def test_components_key_table_holds_only_documented_keys() -> None:
    listed = set(ORTHANC_KEYS)

    unknown = sorted(listed - set(ORTHANC_DOCUMENTED_KEYS))

    assert not unknown, f"components.pacs.ORTHANC_KEYS lists keys Orthanc does not have: {unknown}"


# Orthanc refuses to start when two files in its directory define the same key.
@pytest.mark.parametrize("recording_name", RECORDINGS)
def test_no_key_is_defined_in_two_orthanc_files(recording_name: str, request) -> None:
    recording: Recording = request.getfixturevalue(recording_name)

    counts = Counter(key for document in orthanc_files(recording).values() for key in document)

    clashes = sorted(key for key, count in counts.items() if count > 1)
    assert clashes == [], f"{recording_name}: keys defined in several files: {clashes}"


# The component's duplicate detector notices a clash.
def test_duplicate_detector_reports_a_key_in_two_files() -> None:
    files = {"a.json": {"DicomAet": "A", "HttpPort": 1}, "b.json": {"DicomAet": "B"}}

    clashes = duplicate_keys(files)

    assert clashes == {"DicomAet": ["a.json", "b.json"]}, clashes


# Configuration files land where the image merges them (/etc/orthanc/*.json); the only other
# uploads are the DICOM TLS files that the configuration names.
@pytest.mark.parametrize("recording_name", RECORDINGS)
def test_uploads_land_where_the_image_reads_them(recording_name: str, request) -> None:
    recording: Recording = request.getfixturevalue(recording_name)
    files = orthanc_files(recording)
    named = {
        value
        for document in files.values()
        for key, value in document.items()
        if key in {"DicomTlsCertificate", "DicomTlsPrivateKey", "DicomTlsTrustedCertificates"}
    }

    paths = [upload["file"] for upload in pacs_container(recording).input("uploads")]

    json_paths = [path for path in paths if path.endswith(".json")]
    misplaced = [p for p in json_paths if PurePosixPath(p).parent != ORTHANC_CONFIG_DIR]
    assert not misplaced, f"{recording_name}: JSON the image never merges: {misplaced}"
    others = {path for path in paths if not path.endswith(".json")}
    assert others == named, f"{recording_name}: other uploads {sorted(others)}, named {named}"


# The image runs envsubst over every config file: a `$` would be replaced before Orthanc reads it.
@pytest.mark.parametrize("stack", STACKS)
def test_rendered_files_survive_the_images_variable_substitution(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    uploads = pacs_container(recording).input("uploads")

    with_dollar = [
        u["file"] for u in uploads if u["file"].endswith(".json") and "$" in u["content"]
    ]
    assert with_dollar == [], f"files the entrypoint's envsubst would alter: {with_dollar}"


# Every variable is one the image or DCMTK reads: ORTHANC__ names in UPPER_SNAKE for a documented
# setting only, none that dumps the merged configuration (passwords) into the log, and DCMTK's
# TCP_NODELAY on so that C-STORE answers do not wait on Nagle's algorithm.
@pytest.mark.parametrize("stack", STACKS)
def test_environment_follows_the_image_contract(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    variables = dict(line.split("=", 1) for line in pacs_container(recording).input("envs", []))

    undocumented = sorted(
        name
        for name in variables
        if name not in ORTHANC_IMAGE_VARIABLES | DCMTK_VARIABLES
        and not PLUGIN_SWITCH_VARIABLE.fullmatch(name)
        and not (
            ORTHANC_SETTING_VARIABLE.fullmatch(name)
            and setting_of_variable(name) in ORTHANC_DOCUMENTED_KEYS
        )
    )
    assert undocumented == [], f"{stack}: variables the image ignores or misreads: {undocumented}"
    assert CONFIG_DUMP_VARIABLE not in variables, f"{stack}: the configuration is dumped"
    assert variables.get("TCP_NODELAY") == "1", f"{stack}: DCMTK keeps Nagle's algorithm on"


# ORTHANC__ names map to settings the way the image maps them.
def test_orthanc_variables_map_to_settings() -> None:
    assert setting_of_variable("ORTHANC__DICOM_AET") == "DicomAet"
    assert setting_of_variable("ORTHANC__DICOM_WEB__PUBLIC_ROOT") == "DicomWeb.PublicRoot"
    assert not ORTHANC_SETTING_VARIABLE.fullmatch("ORTHANC__DicomAet")


# Orthanc listens on its documented ports: the gateway proxies to the HTTP one, the DICOM port is
# what Docker publishes.
@pytest.mark.parametrize("stack", STACKS)
def test_orthanc_listens_on_its_documented_ports(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    files = orthanc_files(recording)

    published = [port["internal"] for port in pacs_container(recording).input("ports")]

    assert files["orthanc.json"]["HttpPort"] == ORTHANC_HTTP_PORT, f"{stack}: HTTP port"
    assert files["dicom.json"]["DicomPort"] == ORTHANC_DICOM_PORT, f"{stack}: DICOM port"
    assert published == [ORTHANC_DICOM_PORT], f"{stack}: publishes container ports {published}"


# Authentication is on with four generated users (administrator, OpenEMR viewer, health probe,
# EDR monitor), each with a password of its own, in a secret file that alone defines them; the
# health probe logs in as one of them.
@pytest.mark.parametrize("stack", STACKS)
def test_authentication_uses_generated_users_in_a_secret_file(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    files = orthanc_files(recording)
    index = upload_index(recording, f"{ORTHANC_CONFIG_DIR}/credentials.json")
    probe = pacs_container(recording).input("healthcheck.tests")

    users = files["credentials.json"]["RegisteredUsers"]

    assert files["orthanc.json"]["AuthenticationEnabled"] is True
    assert set(users) == {"admin", "openemr", "health-probe", "edr-monitor"}, sorted(users)
    assert len(set(users.values())) == 4, "each user needs a password of its own"
    assert pacs_container(recording).input_is_secret(f"uploads.{index}.content")
    assert not any(
        "RegisteredUsers" in document
        for name, document in files.items()
        if name != "credentials.json"
    )
    probe_users = [part.removeprefix("--user=") for part in probe if part.startswith("--user=")]
    assert len(probe_users) == 1 and probe_users[0] in users, f"{stack}: probe logs in as {probe}"


# Storage and index live at the image's storage directory, on a PHI-labelled volume mounted at
# that directory's parent, the container's only mount.
@pytest.mark.parametrize("stack", STACKS)
def test_storage_lives_on_a_phi_volume_at_the_images_path(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    settings = orthanc_files(recording)["orthanc.json"]
    volume = recording.named("pacs-storage", VOLUME)
    labels = {item["label"]: item["value"] for item in volume.input("labels")}
    mounted = pacs_container(recording).input("volumes")

    mounts = {mount["containerPath"]: mount["volumeName"] for mount in mounted}

    assert mounts == {ORTHANC_DATA_MOUNT: volume.input("name")}, f"{stack}: mounts {mounts}"
    assert settings["StorageDirectory"] == ORTHANC_STORAGE_DIR, f"{stack}: storage elsewhere"
    assert settings["IndexDirectory"] == ORTHANC_STORAGE_DIR, f"{stack}: index elsewhere"
    assert labels["hospital.data-class"] == "phi", labels


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
            "internal": ORTHANC_DICOM_PORT,
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
        ("10.40.1.10", 4242, ORTHANC_DICOM_PORT)
    ], rows


# Health comes from the image's own probe, which finds the password itself: none on the line.
@pytest.mark.parametrize("stack", STACKS)
def test_health_check_uses_the_images_probe(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    test = pacs_container(recording).input("healthcheck.tests")

    assert test[:3] == ["CMD", "python3", ORTHANC_PROBE], test
    assert not any(part.startswith("--pwd") for part in test), test


# Orthanc runs as the image's unprivileged user with every capability dropped.
def test_orthanc_runs_unprivileged(prod_recording: Recording) -> None:
    container = pacs_container(prod_recording)

    assert container.input("user") == ORTHANC_USER
    assert container.input("capabilities") == {"drops": ["ALL"]}, container.input("capabilities")
    assert ORTHANC_DICOM_PORT > 1024


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

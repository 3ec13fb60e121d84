"""Stack settings: the committed stack files validate, and every kind of bad value is refused
with its key, its value and its rule, before any resource is registered."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from components.settings import SettingsError, validate_settings
from tools.preview import PreviewFailed, run_program

REPO = Path(__file__).resolve().parents[2]


def stack_document(stack: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())


def section(document: dict[str, Any], key: str) -> Any:
    return document["config"][f"hospital:{key}"]


def set_key(key: str, value: Any) -> Callable[[dict], None]:
    """A mutation that sets `hospital:<top>.<path>` to `value`, creating nothing else."""
    top, *path = key.split(".")

    def mutate(document: dict) -> None:
        if not path:
            document["config"][f"hospital:{top}"] = value
            return
        target = section(document, top)
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def drop_key(key: str) -> Callable[[dict], None]:
    def mutate(document: dict) -> None:
        del document["config"][f"hospital:{key}"]

    return mutate


BAD_INPUTS = [
    # (stack, mutation, key the message must name, words of the rule)
    ("prod", set_key("gateway.httpsPort", True), "hospital:gateway.httpsPort", "not true or false"),
    (
        "prod",
        set_key("pacs.modalities.CT1.host", "10.40.1.0/24"),
        "hospital:pacs.modalities.CT1.host",
        "IP address or DNS host name",
    ),
    (
        "dev",
        set_key("pki.earlyRenewalDays", 120),
        "hospital:pki.earlyRenewalDays",
        "must be shorter than pki.certificateValidityDays",
    ),
    (
        "prod",
        lambda d: section(d, "pki").update(caValidityDays=365, certificateValidityDays=397),
        "hospital:pki.caValidityDays",
        "certificates outlive the CA",
    ),
    ("prod", set_key("environment", "staging"), "hospital:environment", "'dev' or 'prod'"),
    ("prod", drop_key("domain"), "hospital:domain", "is required"),
    ("prod", set_key("domain", "Not A Domain"), "hospital:domain", "should match pattern"),
    (
        "prod",
        set_key("pacs.modalities.CT1.port", 70000),
        "hospital:pacs.modalities.CT1.port",
        "less than or equal to 65535",
    ),
    (
        "prod",
        set_key("pacs.modalities.CT1.aet", "A" * 17),
        "hospital:pacs.modalities.CT1.aet",
        "should match pattern",
    ),
    (
        "prod",
        set_key("pacs.modalities.CT1.host", "0.0.0.0"),
        "hospital:pacs.modalities.CT1.host",
        "not 0.0.0.0",
    ),
    (
        "prod",
        set_key("pacs.modalities.CT1.allow", ["store", "print"]),
        "hospital:pacs.modalities.CT1.allow.1",
        "'echo', 'find', 'get', 'move' or 'store'",
    ),
    (
        "prod",
        set_key("network.data.subnet", "172.31.0.0/16"),
        "hospital:network.data.subnet",
        "zones must not overlap",
    ),
    (
        "prod",
        set_key("network.edge.subnet", "172.31.0.300/24"),
        "hospital:network.edge.subnet",
        "valid IPv4 network",
    ),
    ("prod", set_key("addresses.edge", "0.0.0.0"), "hospital:addresses.edge", "not 0.0.0.0"),
    (
        "prod",
        set_key("credentials.length", 14),
        "hospital:credentials.length",
        "prod passwords must be at least 16",
    ),
    (
        "dev",
        set_key("credentials.length", 10),
        "hospital:credentials.length",
        "greater than or equal to 12",
    ),
    (
        "prod",
        set_key("credentials.rotation", "last spring"),
        "hospital:credentials.rotation",
        "valid date",
    ),
    (
        "prod",
        set_key("pki.certificateValidityDays", 825),
        "hospital:pki.certificateValidityDays",
        "less than or equal to 397",
    ),
    ("prod", set_key("pki.rsaBits", 2048), "hospital:pki.rsaBits", "3072 or 4096"),
    (
        "prod",
        set_key("pki.caCertificate", "not a pem"),
        "hospital:pki.caCertificate",
        "PEM-encoded X.509",
    ),
    (
        "prod",
        set_key("database.image", "mariadb:latest"),
        "hospital:database.image",
        "never 'latest'",
    ),
    ("prod", set_key("emr.image", "openemr/openemr"), "hospital:emr.image", "pinned"),
    (
        "prod",
        set_key("edr.image", "ghcr.io/velocidex/velociraptor-server:0.72.4"),
        "hospital:edr.image",
        "0.77.3 or later",
    ),
    (
        "prod",
        set_key("backup.schedule", "0 2 * * 1"),
        "hospital:backup.schedule",
        "longer than the recovery point objective",
    ),
    (
        "prod",
        set_key("backup.schedule", "0 25 * * *"),
        "hospital:backup.schedule",
        "hour value '25'",
    ),
    (
        "prod",
        set_key("backup.recipients", []),
        "hospital:backup.recipients",
        "need at least one age recipient",
    ),
    ("prod", set_key("backup.enabled", False), "hospital:backup.enabled", "prod must back up"),
    (
        "prod",
        set_key("backup.retention.daily", 3),
        "hospital:backup.retention.daily",
        "at least 7 daily",
    ),
    (
        "prod",
        set_key("backup.hostPath", "backups"),
        "hospital:backup.hostPath",
        "absolute host path",
    ),
    (
        "prod",
        set_key("backup.hostPath", "/var/lib/docker/volumes/backups"),
        "hospital:backup.hostPath",
        "lies in /var/lib/docker",
    ),
    (
        "prod",
        set_key("backup.hostPath", "/srv/../etc/hospital"),
        "hospital:backup.hostPath",
        "lies in /etc",
    ),
    ("prod", set_key("backup.hostPath", "/var"), "hospital:backup.hostPath", "contains /var/run"),
    ("prod", set_key("backup.hostPath", "/"), "hospital:backup.hostPath", "root directory"),
    (
        "prod",
        set_key("backup.rpoHours", 48),
        "hospital:backup.rpoHours",
        "must be at most 24 hours",
    ),
    (
        "dev",
        set_key("backup", {"enabled": False, "schedule": "0 4 29 feb *"}),
        "hospital:backup.schedule",
        "runs 1 time in four years",
    ),
    (
        "prod",
        set_key("logging.maxSize", "lots"),
        "hospital:logging.maxSize",
        "should match pattern",
    ),
    (
        "prod",
        set_key("gateway.httpPort", 443),
        "hospital:gateway.httpPort",
        "already published on 10.40.0.10 by gateway.httpsPort",
    ),
    ("prod", set_key("pacs.colour", "blue"), "hospital:pacs.colour", "is not a known setting"),
    (
        "prod",
        set_key("backup.cpuShares", 1),
        "hospital:backup.cpuShares",
        "greater than or equal to 2",
    ),
    ("dev", set_key("edr.cpuShares", True), "hospital:edr.cpuShares", "not true or false"),
    ("prod", set_key("databse", {"memoryMb": 512}), "hospital:databse", "is not a known setting"),
    (
        "prod",
        set_key(
            "attestations", [{"item": "vpn", "by": "IT", "date": "2999-01-01", "evidence": "x"}]
        ),
        "hospital:attestations.0.date",
        "must not lie in the future",
    ),
]


@pytest.mark.parametrize(
    ("stack", "mutate", "key", "rule"),
    BAD_INPUTS,
    ids=[f"{case[0]}:{case[2].removeprefix('hospital:')}" for case in BAD_INPUTS],
)
def test_bad_stack_value_names_key_and_rule_and_creates_nothing(
    tmp_path: Path, stack: str, mutate, key: str, rule: str
) -> None:
    document = copy.deepcopy(stack_document(stack))
    mutate(document)
    stack_file = tmp_path / f"Pulumi.{stack}.yaml"
    stack_file.write_text(yaml.safe_dump(document))

    with pytest.raises(PreviewFailed) as failure:
        run_program(stack, stack_file)

    assert isinstance(failure.value.error, SettingsError), f"not a settings error: {failure.value}"
    matching = [p for p in failure.value.error.problems if p.key == key]
    assert matching, f"no problem names {key}: {failure.value.problems}"
    assert any(rule in p.rule for p in matching), f"rule {rule!r} missing from {matching}"
    created = [r.type for r in failure.value.recording.resources if r.type != "pulumi:pulumi:Stack"]
    assert created == [], f"a bad stack file still registered {created}"


# Dev may publish on every interface (a lab on a spare machine), but the program says so: the
# design keeps dev on loopback, and an operator must notice the difference.
def test_dev_on_all_interfaces_is_warned_about(tmp_path: Path) -> None:
    document = copy.deepcopy(stack_document("dev"))
    set_key("addresses.edge", "0.0.0.0")(document)
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(yaml.safe_dump(document))

    recording = run_program("dev", stack_file)

    warnings = [entry.message for entry in recording.logs if entry.severity == "warning"]
    assert any("hospital:addresses.edge is 0.0.0.0" in message for message in warnings), warnings
    assert not any("addresses.dicom" in message for message in warnings), warnings


SECRET_CASES = [
    # (where the secret sits in the stack file, the key the problem names)
    ("dbPassword", "hospital:dbPassword"),
    ("database.rootPassword", "hospital:database.rootPassword"),
    ("credentials.length", "hospital:credentials.length"),
]


# A value held as a secret (`secure:` in the stack file) is never shown in a settings problem,
# whether its key is unknown, nested under a section or of the wrong type.
@pytest.mark.parametrize(("where", "key"), SECRET_CASES, ids=[c[0] for c in SECRET_CASES])
def test_settings_problems_never_show_a_secret_value(tmp_path: Path, where: str, key: str) -> None:
    plaintext = "Secret-Value-77"
    document = copy.deepcopy(stack_document("prod"))
    set_key(where, {"secure": "AAAA"})(document)
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text(yaml.safe_dump({f"hospital:{where}": plaintext}))

    with pytest.raises(PreviewFailed) as failure:
        run_program("prod", stack_file, secrets_file=secrets_file)

    named = [p for p in failure.value.error.problems if p.key == key]
    assert named, f"no problem names {key}: {failure.value.problems}"
    assert plaintext not in str(failure.value), f"the secret reached the message: {failure.value}"
    assert all(str(p).startswith(f"{key} = [secret]:") for p in named), named


# A private key pasted into a plain setting is not repeated back either.
def test_a_private_key_in_a_plain_setting_is_not_shown(own_ca: tuple[str, str]) -> None:
    raw = {key.split(":", 1)[1]: value for key, value in stack_document("prod")["config"].items()}
    raw["pki"] = {**raw["pki"], "caPrivateKey": own_ca[1]}

    with pytest.raises(SettingsError) as failure:
        validate_settings(raw)

    assert [str(p) for p in failure.value.problems] == [
        "hospital:pki.caPrivateKey = [secret]: is not a known setting"
    ]


# A missing field is reported as missing, not by repeating the section around it.
def test_missing_nested_field_is_reported_as_missing() -> None:
    raw = {key.split(":", 1)[1]: value for key, value in stack_document("prod")["config"].items()}
    raw["network"] = {k: v for k, v in raw["network"].items() if k != "security"}

    with pytest.raises(SettingsError) as failure:
        validate_settings(raw)

    assert [str(p) for p in failure.value.problems] == [
        "hospital:network.security = (missing): Field required"
    ]


# Every problem is reported in one go, not one per run.
def test_all_problems_are_reported_together() -> None:
    raw = {key.split(":", 1)[1]: value for key, value in stack_document("prod")["config"].items()}
    raw["credentials"] = {**raw["credentials"], "length": 12}
    raw["addresses"] = {**raw["addresses"], "dicom": "0.0.0.0"}
    raw["pacs"] = {**raw["pacs"], "dicomPort": 0}

    with pytest.raises(SettingsError) as failure:
        validate_settings(raw)

    keys = {problem.key for problem in failure.value.problems}
    assert {
        "hospital:credentials.length",
        "hospital:addresses.dicom",
        "hospital:pacs.dicomPort",
    } <= keys, f"only {keys} reported"


# The hospital CA's key written into the stack file in plain text is refused (it would sit
# unencrypted in the repository), naming the key and never showing it; nothing is created.
def test_plaintext_ca_private_key_is_refused_unseen(
    tmp_path: Path, own_ca: tuple[str, str]
) -> None:
    certificate_pem, key_pem = own_ca
    document = copy.deepcopy(stack_document("prod"))
    document["config"]["hospital:pki"]["caCertificate"] = certificate_pem
    document["config"]["hospital:caPrivateKey"] = key_pem
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))

    with pytest.raises(PreviewFailed) as failure:
        run_program("prod", stack_file)

    problems = [str(p) for p in failure.value.error.problems]
    assert problems == [
        "hospital:caPrivateKey = [secret]: is stored in plain text in the stack file; remove it "
        "and set it again with `pulumi config set --secret caPrivateKey < ca.key`"
    ], problems
    assert "PRIVATE KEY" not in str(failure.value), "the key's text reached the message"
    assert [
        r.type for r in failure.value.recording.resources if r.type != "pulumi:pulumi:Stack"
    ] == []


# The hospital CA certificate without its secret key (and vice versa) is refused.
def test_own_ca_requires_its_private_key(own_ca_pem: str) -> None:
    raw = {key.split(":", 1)[1]: value for key, value in stack_document("prod")["config"].items()}
    raw["pki"] = {**raw["pki"], "caCertificate": own_ca_pem}

    with pytest.raises(SettingsError) as failure:
        validate_settings(raw, has_own_ca_key=False)

    assert [p.key for p in failure.value.problems] == ["hospital:caPrivateKey"]
    assert validate_settings(raw, has_own_ca_key=True).pki.ca_certificate == own_ca_pem.strip()


# The hospital CA's key must be a readable PEM key of that very CA; it is never shown.
def test_own_ca_key_must_belong_to_the_certificate(own_ca: tuple[str, str]) -> None:
    raw = {key.split(":", 1)[1]: value for key, value in stack_document("prod")["config"].items()}
    raw["pki"] = {**raw["pki"], "caCertificate": own_ca[0]}
    other_key = (
        ec.generate_private_key(ec.SECP384R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )

    outcomes = {}
    for label, key in (("other", other_key), ("garbage", "not a key"), ("own", own_ca[1])):
        try:
            validate_settings(raw, has_own_ca_key=True, own_ca_key_pem=key)
            outcomes[label] = "accepted"
        except SettingsError as error:
            outcomes[label] = [str(problem) for problem in error.problems]

    assert outcomes == {
        "other": ["hospital:caPrivateKey = [secret]: does not belong to pki.caCertificate"],
        "garbage": ["hospital:caPrivateKey = [secret]: must be one unencrypted PEM private key"],
        "own": "accepted",
    }


# A CA with a weak key is refused even when the hospital supplies it.
def test_weak_own_ca_is_refused(weak_ca_pem: str) -> None:
    raw = {key.split(":", 1)[1]: value for key, value in stack_document("prod")["config"].items()}
    raw["pki"] = {**raw["pki"], "caCertificate": weak_ca_pem}

    with pytest.raises(SettingsError) as failure:
        validate_settings(raw, has_own_ca_key=True)

    assert any("at least 3072 bits" in p.rule for p in failure.value.problems)


# Settings are immutable once loaded: a component cannot change them for the others.
def test_settings_are_frozen() -> None:
    raw = {key.split(":", 1)[1]: value for key, value in stack_document("dev")["config"].items()}
    settings = validate_settings(raw)

    with pytest.raises(Exception, match="frozen"):
        settings.pacs.dicom_port = 1  # type: ignore[misc]

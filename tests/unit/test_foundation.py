"""The foundation under the offline preview: trust zones, credentials, PKI, volumes, exports."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import get_args

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from components.credentials import SAFE_SPECIALS
from components.volumes import DataClass
from tools.preview import run_program
from tools.recording import Recording

REPO = Path(__file__).resolve().parents[2]
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
PASSWORD = "random:index/randomPassword:RandomPassword"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
CA_CERT = "tls:index/selfSignedCert:SelfSignedCert"
LEAF_CERT = "tls:index/locallySignedCert:LocallySignedCert"


def labels(resource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.input("labels", [])}


def load_pem(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


# Both committed stack files load and build a full data center.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stack_builds(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    types = {resource.type for resource in recording.resources}

    assert {NETWORK, VOLUME, PASSWORD, PRIVATE_KEY, CA_CERT, LEAF_CERT} <= types, types
    assert recording.export("environment") == stack


# The four trust zones exist with the configured subnets; only the data zone is internal.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_trust_zones_match_settings(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    configured = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    subnets = {zone: spec["subnet"] for zone, spec in configured["hospital:network"].items()}

    networks = {labels(n)["hospital.zone"]: n for n in recording.of_type(NETWORK)}

    assert set(networks) == {"edge", "clinical", "data", "security"}
    for zone, network in networks.items():
        assert network.input("ipamConfigs")[0]["subnet"] == subnets[zone], zone
        assert bool(network.input("internal", False)) == (zone == "data"), zone
        assert network.input("name") == f"hospital-{stack}-{zone}"
    exported = recording.export("networks")
    assert exported["data"] == {
        "name": f"hospital-{stack}-data",
        "subnet": subnets["data"],
        "internal": True,
    }


# Containers join their zones only through networksAdvanced, each with its service aliases:
# a networkMode naming a zone would make Docker drop the aliases listed for that zone.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_containers_join_zones_with_their_aliases(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    zones = {n.input("name") for n in recording.of_type(NETWORK)}

    for container in recording.of_type("docker:index/container:Container"):
        name = container.input("name")
        joined = container.input("networksAdvanced")

        assert container.input("networkMode") is None, f"{name} sets a network mode"
        assert joined and {n["name"] for n in joined} <= zones, f"{name} joins {joined}"
        for network in joined:
            assert name in network["aliases"], f"{name} has no alias on {network['name']}"


# Every password demands all four character classes, a safe special set, the policy length
# and a rotation keeper; its result is secret.
def test_passwords_meet_the_policy(prod_recording: Recording) -> None:
    passwords = prod_recording.of_type(PASSWORD)

    assert passwords, "no generated passwords"
    for password in passwords:
        for minimum in ("minUpper", "minLower", "minNumeric", "minSpecial"):
            assert password.input(minimum) >= 1, f"{password.name}: {minimum}"
        assert password.input("length") >= 16, password.name
        assert set(password.input("overrideSpecial")) <= set(SAFE_SPECIALS)
        assert password.input("keepers")["rotation"] == "2026-11-15"
        assert password.output_is_secret("result"), f"{password.name} result is not secret"
        result = password.output("result")
        assert len(result) == password.input("length")
        assert any(c in SAFE_SPECIALS for c in result)


# One password per account: no two accounts share a RandomPassword.
def test_one_password_per_account(prod_recording: Recording) -> None:
    accounts = [p.input("keepers")["account"] for p in prod_recording.of_type(PASSWORD)]

    assert len(accounts) == len(set(accounts)), f"duplicate accounts: {accounts}"
    assert sorted(accounts) == prod_recording.export("credentialAccounts")


# Changing the rotation stamp changes every password's keepers, which makes Pulumi replace them.
def test_rotation_stamp_rotates_every_password(tmp_path: Path, prod_recording: Recording) -> None:
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["hospital:credentials"]["rotation"] = "2027-02-01"
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))

    rotated = run_program("prod", stack_file)

    before = {p.name: p.input("keepers") for p in prod_recording.of_type(PASSWORD)}
    after = {p.name: p.input("keepers") for p in rotated.of_type(PASSWORD)}
    assert before.keys() == after.keys()
    assert all(before[name] != after[name] for name in before), "some keepers did not change"
    assert {keepers["rotation"] for keepers in after.values()} == {"2027-02-01"}


# The generated CA is a P-384 CA certificate within its configured validity.
def test_generated_ca_is_strong(prod_recording: Recording) -> None:
    (ca,) = prod_recording.of_type(CA_CERT)
    certificate = load_pem(ca.output("certPem"))

    assert ca.input("isCaCertificate") is True
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    assert certificate.public_key().curve.key_size == 384
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime <= datetime.timedelta(days=3650, hours=1)
    assert ca.input("earlyRenewalHours") > 0


# Every leaf certificate verifies against the CA and carries its SANs, usages and bounded
# validity, with early renewal set.
def test_leaf_certificates_verify_against_the_ca(prod_recording: Recording) -> None:
    (ca,) = prod_recording.of_type(CA_CERT)
    ca_certificate = load_pem(ca.output("certPem"))
    requests = {r.name: r for r in prod_recording.of_type("tls:index/certRequest:CertRequest")}

    leaves = prod_recording.of_type(LEAF_CERT)
    assert leaves, "no service certificates were issued"
    for leaf in leaves:
        certificate = load_pem(leaf.output("certPem"))

        certificate.verify_directly_issued_by(ca_certificate)
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert sans.value.get_values_for_type(x509.DNSName) == requests[leaf.name].input(
            "dnsNames"
        ), leaf.name
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.SERVER_AUTH in usages or ExtendedKeyUsageOID.CLIENT_AUTH in (
            usages
        ), leaf.name
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        assert lifetime <= datetime.timedelta(days=397), f"{leaf.name} lives {lifetime}"
        assert 0 < leaf.input("earlyRenewalHours") < leaf.input("validityPeriodHours")


# The certificates export shows subject, SANs, fingerprint and expiry of each certificate.
def test_certificates_export_describes_each_certificate(prod_recording: Recording) -> None:
    leaves = {
        load_pem(leaf.output("certPem")).subject for leaf in prod_recording.of_type(LEAF_CERT)
    }

    exported = prod_recording.export("certificates")

    assert {"ca", *()} <= set(exported)
    assert len(exported) == len(leaves) + 1
    for name, described in exported.items():
        assert set(described) == {"subject", "sans", "sha256", "notAfter"}, name
        assert len(described["sha256"]) == 64, name
        datetime.datetime.fromisoformat(described["notAfter"].replace("Z", "+00:00"))


# Private keys never leave the stack in plain form: every key output is secret.
def test_private_keys_are_secret(prod_recording: Recording) -> None:
    for key in prod_recording.of_type(PRIVATE_KEY):
        assert key.output_is_secret("privateKeyPem"), key.name
        assert key.input("algorithm") == "ECDSA" and key.input("ecdsaCurve") == "P384", key.name


# No generated secret string appears in any plain export, in either stack.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_secret_in_plain_exports(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    secrets = set(recording.secret_values())

    leaks = [
        (name, path)
        for name, export in recording.exports.items()
        if not export.secret
        for path, text in _strings(export.redacted(), name)
        if any(secret in text for secret in secrets)
    ]

    assert secrets, "the preview produced no secrets to scan for"
    assert leaks == [], f"secret values in plain exports: {leaks}"
    assert recording.exports["credentials"].secret, "credentials export is not secret"


# In prod every volume outlives `pulumi destroy`; in dev volumes go with the stack.
@pytest.mark.parametrize(("stack", "retained"), [("prod", True), ("dev", False)])
def test_volumes_are_labelled_and_retained_in_prod(stack: str, retained: bool, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    volumes = recording.of_type(VOLUME)

    assert volumes, "no volumes"
    for volume in volumes:
        assert labels(volume)["hospital.data-class"] in get_args(DataClass), volume.name
        assert labels(volume)["hospital.service"], volume.name
        assert bool(volume.options.get("retainOnDelete")) is retained, volume.name


# Published ports in prod bind to the configured interface addresses, never 0.0.0.0.
def test_prod_publishes_on_named_addresses_only(prod_recording: Recording) -> None:
    configured = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"]
    allowed = set(configured["hospital:addresses"].values())

    for container in prod_recording.of_type("docker:index/container:Container"):
        for port in container.input("ports", []) or []:
            address = port.get("ip", "0.0.0.0")
            assert not ipaddress.ip_address(address).is_unspecified, container.name
            assert address in allowed, f"{container.name} publishes on {address}"


# The hospital's own CA replaces the generated one and signs every service certificate.
def test_own_ca_signs_the_services(tmp_path: Path, own_ca: tuple[str, str]) -> None:
    certificate_pem, key_pem = own_ca
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["hospital:pki"]["caCertificate"] = certificate_pem
    document["config"]["hospital:caPrivateKey"] = {"secure": "v1:offline-placeholder"}
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text(yaml.safe_dump({"hospital:caPrivateKey": key_pem}))

    recording = run_program("prod", stack_file, secrets_file=secrets_file)

    assert recording.of_type(CA_CERT) == [], "a CA was generated despite the hospital's own"
    ca_certificate = load_pem(certificate_pem)
    for leaf in recording.of_type(LEAF_CERT):
        load_pem(leaf.output("certPem")).verify_directly_issued_by(ca_certificate)
        assert leaf.input_is_secret("caPrivateKeyPem"), leaf.name
    assert key_pem not in str([export.redacted() for export in recording.exports.values()])


def _strings(value, path: str):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")
    elif isinstance(value, str):
        yield path, value

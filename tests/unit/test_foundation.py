"""The foundation under the offline preview: trust zones, credentials, the PKI (each service's
names and usages), volumes, exports, and the image contracts of the containers no other test
file holds to theirs.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Mapping
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
from tools.recording import RecordedResource, Recording

REPO = Path(__file__).resolve().parents[2]
STACKS = ["dev", "prod"]
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
CONTAINER = "docker:index/container:Container"
PASSWORD = "random:index/randomPassword:RandomPassword"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
CA_CERT = "tls:index/selfSignedCert:SelfSignedCert"
LEAF_CERT = "tls:index/locallySignedCert:LocallySignedCert"
SERVER_AUTH, CLIENT_AUTH = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH

# --- what the images read, written out from their own documentation --------------------------

# The containers of each stack. MariaDB, OpenEMR and Orthanc are held to their images' contracts
# in test_database.py, test_emr.py and test_pacs.py; the other images here.
SERVICES = {
    "dev": {"database", "emr", "pacs", "gateway", "edr"},
    "prod": {"database", "emr", "pacs", "gateway", "edr", "backup"},
}
# Variables each image reads: nginx's official image (docker-library docs, nginx/content.md),
# Velociraptor's server image (Docker/entrypoint of Velocidex/velociraptor), and the stack's own
# backup image (the usage of backup/bin/backup, backup-scheduler and backup-healthcheck).
IMAGE_VARIABLES: Mapping[str, frozenset[str]] = {
    "gateway": frozenset(
        {
            "NGINX_ENTRYPOINT_QUIET_LOGS",
            "NGINX_ENTRYPOINT_LOCAL_RESOLVERS",
            "NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE",
            "NGINX_ENVSUBST_TEMPLATE_DIR",
            "NGINX_ENVSUBST_TEMPLATE_SUFFIX",
            "NGINX_ENVSUBST_OUTPUT_DIR",
            "NGINX_ENVSUBST_FILTER",
        }
    ),
    "edr": frozenset(
        {
            "VELOCIRAPTOR_HOSTNAME",
            "VELOCIRAPTOR_FRONTEND_PORT",
            "VELOCIRAPTOR_GUI_PORT",
            "VELOCIRAPTOR_DATASTORE_PATH",
            "VELOCIRAPTOR_CONFIG_PATH",
            "VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD",
            "VELOCIRAPTOR_NO_INITIALIZE",
            "VELOCIRAPTOR_LITERAL_CONFIG",
        }
    ),
    "backup": frozenset(
        {
            "BACKUP_SCHEDULE",
            "BACKUP_RPO_HOURS",
            "BACKUP_DEST",
            "BACKUP_SOURCE_ROOT",
            "BACKUP_AGE_RECIPIENTS",
            "BACKUP_AGE_RECIPIENTS_FILE",
            "BACKUP_DB_HOST",
            "BACKUP_DB_PORT",
            "BACKUP_DB_USER",
            "BACKUP_DB_PASSWORD_FILE",
            "BACKUP_DB_CA_FILE",
            "BACKUP_DB_DATABASES",
            "BACKUP_DB_VOLUME",
            "BACKUP_DB_BINLOG_GLOB",
            "BACKUP_ZSTD_LEVEL",
            "BACKUP_ZSTD_THREADS",
            "BACKUP_KEEP_DAILY",
            "BACKUP_KEEP_WEEKLY",
            "TZ",
        }
    ),
}
# Velociraptor keeps its generated server config (with its keys) and its datastore here.
VELOCIRAPTOR_CONFIG_DIR = "/etc/velociraptor/"
VELOCIRAPTOR_CONFIG_FILE = "/etc/velociraptor/server.config.yaml"
VELOCIRAPTOR_DATASTORE = "/datastore/"
# The backup image archives every directory below its source root and writes to its destination.
BACKUP_SOURCE_ROOT = "/volumes"
BACKUP_DEST = "/backups"
# nginx's main configuration file in the official image.
NGINX_CONF = "/etc/nginx/nginx.conf"

# Names the deployment guide used that no image reads: set anywhere, they configure nothing.
GUIDE_ONLY_VARIABLES = frozenset(
    {"OE_MYSQL_HOST", "OE_MYSQL_USER", "OE_MYSQL_PASS", "OE_MYSQL_DB", "FORCE_HTTPS"}
)
# orthancteam/orthanc reads ORTHANC__ names in UPPER_SNAKE only (`ORTHANC__DicomAet` silently
# becomes the setting `Dicomaet`).
ORTHANC_UPPER_SNAKE = re.compile(r"ORTHANC__[A-Z0-9_]+")

# --- what each leaf certificate must say ------------------------------------------------------


def expected_leaf_names(stack: str, domain: str) -> dict[str, set[str]]:
    """DNS names each leaf certificate must carry: the names its service is reached by on the
    zones it joins (alias and container name) and its public host name where it has one. The
    gateway's certificates each serve one public site, which browsers reach by that name only.
    """
    return {
        "pki-database": {"mariadb", f"hospital-{stack}-database"},
        "pki-gateway-emr": {f"emr.{domain}"},
        "pki-gateway-pacs": {f"pacs.{domain}"},
        "pki-gateway-edr": {f"edr.{domain}"},
    }


def expected_dicom_names(stack: str, domain: str) -> set[str]:
    """Orthanc's DICOM TLS certificate: its names on the clinical zone and its public name."""
    return {"orthanc", f"hospital-{stack}-pacs", f"pacs.{domain}"}


# The container whose zone aliases a certificate's internal names must be.
LEAF_CONTAINERS = {"pki-database": "database", "pki-pacs-dicom": "pacs"}
# Extended key usages: every certificate serves TLS; Orthanc also presents its DICOM certificate
# as the client when it opens an association (C-MOVE, C-STORE to a modality).
LEAF_EXTENDED_USAGES = {
    "pki-database": {SERVER_AUTH},
    "pki-gateway-emr": {SERVER_AUTH},
    "pki-gateway-pacs": {SERVER_AUTH},
    "pki-gateway-edr": {SERVER_AUTH},
    "pki-pacs-dicom": {SERVER_AUTH, CLIENT_AUTH},
}
# Key usages by key algorithm: ECDSA keys sign the handshake; RSA keys may also encipher the
# premaster secret (TLS 1.2 RSA key exchange). No leaf signs certificates or CRLs.
LEAF_KEY_USAGES = {"ECDSA": {"digital_signature"}, "RSA": {"digital_signature", "key_encipherment"}}
KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def labels(resource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.input("labels", [])}


def load_pem(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def stack_config(stack: str) -> dict:
    return yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]


def environment(container: RecordedResource) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in container.input("envs") or [])


def mounts(container: RecordedResource) -> dict[str, dict]:
    """Container path -> the mount (volumeName, readOnly), for the named volumes (a file
    carrier's volumes are mounted by `fromContainer`, with no path of their own)."""
    return {
        mount["containerPath"]: mount
        for mount in container.input("volumes") or []
        if "containerPath" in mount
    }


def dns_names(certificate: x509.Certificate) -> set[str]:
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return set(extension.value.get_values_for_type(x509.DNSName))


def leaf_certificates(recording: Recording) -> dict[str, x509.Certificate]:
    """Every issued leaf certificate, by resource name."""
    return {leaf.name: load_pem(leaf.output("certPem")) for leaf in recording.of_type(LEAF_CERT)}


def zone_aliases(recording: Recording, service: str) -> set[str]:
    """The names a container is reached by on the zones it joins."""
    container = recording.named(service, CONTAINER)
    return {
        alias for network in container.input("networksAdvanced") for alias in network["aliases"]
    }


@pytest.fixture(scope="module")
def dicom_tls_recording(tmp_path_factory) -> Recording:
    """The prod stack with DICOM TLS on, which issues Orthanc a certificate of its own."""
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["hospital:pacs"]["dicomTls"] = True
    for modality in document["config"]["hospital:pacs"]["modalities"].values():
        modality["tls"] = True
    stack_file = tmp_path_factory.mktemp("dicom-tls") / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    return run_program("prod", stack_file)


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

    for container in recording.started_containers():
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


# Every leaf certificate verifies against the CA, with a bounded validity and early renewal set.
@pytest.mark.parametrize("stack", STACKS)
def test_leaf_certificates_verify_against_the_ca(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    (ca,) = recording.of_type(CA_CERT)
    ca_certificate = load_pem(ca.output("certPem"))

    leaves = recording.of_type(LEAF_CERT)

    assert leaves, "no service certificates were issued"
    for leaf in leaves:
        certificate = load_pem(leaf.output("certPem"))
        certificate.verify_directly_issued_by(ca_certificate)
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        assert lifetime <= datetime.timedelta(days=397), f"{leaf.name} lives {lifetime}"
        assert 0 < leaf.input("earlyRenewalHours") < leaf.input("validityPeriodHours")


# Each stack issues exactly the certificates its services need.
@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_issues_exactly_its_services_certificates(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    expected = expected_leaf_names(stack, stack_config(stack)["hospital:domain"])

    issued = sorted(leaf_certificates(recording))

    assert issued == sorted(expected), f"{stack}: issued {issued}"


# Every leaf certificate names each DNS name its service is reached by on the zones it joins and
# its public host name, and its subject is one of them.
@pytest.mark.parametrize("stack", STACKS)
def test_leaf_certificates_name_every_way_their_service_is_reached(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    expected = expected_leaf_names(stack, stack_config(stack)["hospital:domain"])

    certificates = leaf_certificates(recording)

    for name, certificate in certificates.items():
        missing = expected[name] - dns_names(certificate)
        assert not missing, f"{stack}: {name} lacks {sorted(missing)}"
        common_names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        assert common_names[0].value in expected[name], f"{stack}: {name} subject {common_names}"


# No leaf certificate names anything its service is not reached by.
@pytest.mark.parametrize("stack", STACKS)
def test_leaf_certificates_name_nothing_else(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    expected = expected_leaf_names(stack, stack_config(stack)["hospital:domain"])

    extra = {
        name: sorted(dns_names(certificate) - expected[name])
        for name, certificate in leaf_certificates(recording).items()
    }

    assert not any(extra.values()), f"{stack}: names no zone or public host resolves: {extra}"


# The internal names above are the aliases the containers really carry on their zones.
@pytest.mark.parametrize("stack", STACKS)
def test_certificate_names_are_the_containers_zone_aliases(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    domain = stack_config(stack)["hospital:domain"]

    aliases = zone_aliases(recording, LEAF_CONTAINERS["pki-database"])

    assert expected_leaf_names(stack, domain)["pki-database"] <= aliases, aliases


# Orthanc's DICOM TLS certificate names Orthanc on the clinical zone and by its public name, and
# serves both as server and as client.
def test_dicom_tls_certificate_names_and_usages(dicom_tls_recording: Recording) -> None:
    domain = stack_config("prod")["hospital:domain"]
    expected = expected_dicom_names("prod", domain)

    certificate = leaf_certificates(dicom_tls_recording)["pki-pacs-dicom"]

    assert dns_names(certificate) == expected, (
        f"DICOM TLS SANs are {sorted(dns_names(certificate))}"
    )
    internal = expected - {f"pacs.{domain}"}
    assert internal <= zone_aliases(dicom_tls_recording, LEAF_CONTAINERS["pki-pacs-dicom"])
    usages = set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == LEAF_EXTENDED_USAGES["pki-pacs-dicom"], f"DICOM TLS usages {usages}"


# Each leaf certificate may do exactly what its service does with it: the key usages of its key
# algorithm (critical), the extended usages of its service, and never act as a CA.
@pytest.mark.parametrize(
    ("recording_name", "stack"),
    [("dev_recording", "dev"), ("prod_recording", "prod"), ("dicom_tls_recording", "prod")],
)
def test_leaf_certificates_carry_their_services_usages(
    recording_name: str, stack: str, request
) -> None:
    recording: Recording = request.getfixturevalue(recording_name)
    key_usages = LEAF_KEY_USAGES[stack_config(stack)["hospital:pki"]["algorithm"]]

    certificates = leaf_certificates(recording)

    for name, certificate in certificates.items():
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
        granted = {flag for flag in KEY_USAGE_FLAGS if getattr(usage.value, flag)}
        assert usage.critical and granted == key_usages, f"{name}: key usages {sorted(granted)}"
        extended = set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        assert extended == LEAF_EXTENDED_USAGES[name], f"{name}: extended usages {extended}"
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        assert not is_ca, f"{name} is a CA certificate"


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


# Every container of each stack is one whose image contract some test holds it to.
@pytest.mark.parametrize("stack", STACKS)
def test_every_container_is_held_to_its_images_contract(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    services = {container.name for container in recording.started_containers()}

    assert services == SERVICES[stack], f"{stack}: containers {sorted(services)}"


# No container sets a variable that the deployment guide used and no image reads, nor an
# ORTHANC__ variable that orthancteam/orthanc would rename.
@pytest.mark.parametrize("stack", STACKS)
def test_no_container_sets_a_name_no_image_reads(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    found = {
        container.name: sorted(
            name
            for name in environment(container)
            if name in GUIDE_ONLY_VARIABLES
            or (name.startswith("ORTHANC__") and not ORTHANC_UPPER_SNAKE.fullmatch(name))
        )
        for container in recording.of_type(CONTAINER)
    }

    assert not any(found.values()), f"{stack}: names no image reads: {found}"


# The gateway, the EDR server and the backup job set only variables their images read.
@pytest.mark.parametrize("stack", STACKS)
def test_other_containers_set_only_variables_their_images_read(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    containers = [c for c in recording.of_type(CONTAINER) if c.name in IMAGE_VARIABLES]

    undocumented = {
        container.name: sorted(set(environment(container)) - IMAGE_VARIABLES[container.name])
        for container in containers
    }

    assert containers, f"{stack}: none of {sorted(IMAGE_VARIABLES)} is deployed"
    assert not any(undocumented.values()), f"{stack}: variables images ignore: {undocumented}"


# Velociraptor's config and datastore volumes sit where its variables point it, at the image's
# paths; the gateway mounts nothing and gets nginx's main configuration file.
@pytest.mark.parametrize("stack", STACKS)
def test_edr_and_gateway_paths_are_the_images(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    edr = recording.named("edr", CONTAINER)
    gateway = recording.named("gateway", CONTAINER)
    variables = environment(edr)

    mounted = mounts(edr)

    assert set(mounted) == {VELOCIRAPTOR_CONFIG_DIR, VELOCIRAPTOR_DATASTORE}, sorted(mounted)
    assert variables["VELOCIRAPTOR_CONFIG_PATH"] == VELOCIRAPTOR_CONFIG_FILE
    assert variables["VELOCIRAPTOR_DATASTORE_PATH"] == VELOCIRAPTOR_DATASTORE
    assert mounts(gateway) == {}, f"{stack}: the gateway mounts {sorted(mounts(gateway))}"
    uploaded = [file.file for file in recording.uploaded_files(gateway)]
    assert NGINX_CONF in uploaded, f"{stack}: nginx.conf is not uploaded: {uploaded}"


# The backup job writes to its image's destination and reads every volume read-only below its
# image's source root, one directory per volume, as its variables say.
def test_backup_paths_are_the_images(prod_recording: Recording) -> None:
    backup = prod_recording.named("backup", CONTAINER)
    variables = environment(backup)

    mounted = mounts(backup)

    sources = {path: mount for path, mount in mounted.items() if path != BACKUP_DEST}
    assert BACKUP_DEST in mounted and not mounted[BACKUP_DEST]["readOnly"], sorted(mounted)
    assert sources, "the backup job reads no volume"
    for path, mount in sources.items():
        assert path == f"{BACKUP_SOURCE_ROOT}/{mount['volumeName']}", path
        assert mount["readOnly"], f"{path} is mounted writable"
    assert variables.get("BACKUP_DEST", BACKUP_DEST) == BACKUP_DEST
    assert variables.get("BACKUP_SOURCE_ROOT", BACKUP_SOURCE_ROOT) == BACKUP_SOURCE_ROOT


def _strings(value, path: str):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")
    elif isinstance(value, str):
        yield path, value


# Every container carries its service's CPU weight from the stack file, and the backup job weighs
# least, so a running backup never takes the cores from the clinical services.
def test_every_container_has_its_services_cpu_weight(tmp_path: Path) -> None:
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["hospital:pacs"]["cpuShares"] = 2048
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))

    recording = run_program("prod", stack_file)

    weights = {c.name: c.input("cpuShares") for c in recording.started_containers()}
    assert weights["pacs"] == 2048, weights
    assert all(isinstance(weight, (int, float)) and weight > 0 for weight in weights.values())
    assert weights["backup"] < min(weights[name] for name in ("database", "emr", "gateway"))

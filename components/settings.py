"""The stack settings: one validated, frozen view of the `hospital:` namespace of a stack file.

`load_settings()` reads every key once, validates each section on its own so that every problem
is reported together, runs the rules that span sections, and raises `SettingsError` before any
resource exists.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import Field, TypeAdapter, ValidationError, field_validator

from components.backup import BackupSettings
from components.config_model import (
    CA_PRIVATE_KEY,
    NAMESPACE,
    SECRET_SHOWN_AS,
    ZONES,
    Problem,
    StackModel,
)
from components.database import DatabaseSettings
from components.edr import EdrSettings
from components.emr import EmrSettings
from components.gateway import GatewaySettings
from components.pacs import PacsSettings

PASSWORD_MINIMUM = {"dev": 12, "prod": 16}


class ZoneSettings(StackModel):
    """One trust zone: the subnet of its Docker network."""

    subnet: ipaddress.IPv4Network


class NetworkSettings(StackModel):
    """The four trust zones and their subnets."""

    edge: ZoneSettings
    clinical: ZoneSettings
    data: ZoneSettings
    security: ZoneSettings

    def subnets(self) -> dict[str, ipaddress.IPv4Network]:
        return {zone: getattr(self, zone).subnet for zone in ZONES}


class AddressSettings(StackModel):
    """Host addresses that published ports bind to, one per audience."""

    edge: ipaddress.IPv4Address = Field(description="HTTPS gateway for staff browsers")
    dicom: ipaddress.IPv4Address = Field(description="DICOM port for modalities")
    agents: ipaddress.IPv4Address = Field(description="EDR frontend for enrolled agents")
    management: ipaddress.IPv4Address = Field(description="EDR GUI for the security team")


class CredentialSettings(StackModel):
    """Generated password policy and the rotation stamp that renews every password."""

    length: Annotated[int, Field(ge=12, le=128)] = 24
    rotation: datetime.date = Field(description="changing this date rotates every password")


class PkiSettings(StackModel):
    """The certificate authority and the lifetime of the certificates it issues."""

    organization: Annotated[str, Field(min_length=1, max_length=64)]
    algorithm: Literal["ECDSA", "RSA"] = "ECDSA"
    rsa_bits: Literal[3072, 4096] = 3072
    ca_validity_days: Annotated[int, Field(ge=365, le=7300)] = 3650
    certificate_validity_days: Annotated[int, Field(ge=30, le=397)] = 365
    early_renewal_days: Annotated[int, Field(ge=7, le=180)] = 30
    ca_certificate: str | None = Field(
        default=None,
        description="PEM of the hospital's own CA; its key goes in caPrivateKey",
    )

    @field_validator("ca_certificate")
    @classmethod
    def _is_strong_ca(cls, pem: str | None) -> str | None:
        if pem is None:
            return None
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            raise ValueError("must be one PEM-encoded X.509 certificate") from None
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise ValueError("must be a CA certificate (basicConstraints CA:TRUE)")
        key = certificate.public_key()
        strong = (isinstance(key, rsa.RSAPublicKey) and key.key_size >= 3072) or (
            isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size >= 384
        )
        if not strong:
            raise ValueError("must use an RSA key of at least 3072 bits or ECDSA P-384 or larger")
        return pem


class LoggingSettings(StackModel):
    """Container log rotation on the Docker host."""

    driver: Literal["json-file", "local"] = "local"
    max_size: Annotated[str, Field(pattern=r"^[1-9][0-9]*[kmg]$")] = "10m"
    max_file: Annotated[int, Field(ge=1, le=100)] = 5


AttestationItem = Literal[
    "staff-training",
    "restore-test",
    "risk-assessment",
    "third-party-assessment",
    "vpn",
    "physical-security",
    "topology-review",
    "alert-routing",
]


class Attestation(StackModel):
    """A signed-off organisational control that no resource can show."""

    item: AttestationItem
    by: Annotated[str, Field(min_length=1, max_length=128)]
    date: datetime.date
    evidence: Annotated[str, Field(min_length=1, max_length=512)]

    @field_validator("date")
    @classmethod
    def _not_in_future(cls, value: datetime.date) -> datetime.date:
        if value > datetime.date.today():
            raise ValueError("must not lie in the future")
        return value


class Settings(StackModel):
    """Everything a stack file configures, validated."""

    environment: Literal["dev", "prod"]
    domain: Annotated[
        str,
        Field(
            pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
            max_length=200,
        ),
    ]
    network: NetworkSettings
    addresses: AddressSettings
    credentials: CredentialSettings
    pki: PkiSettings
    logging: LoggingSettings = LoggingSettings()
    database: DatabaseSettings = DatabaseSettings()
    emr: EmrSettings = EmrSettings()
    pacs: PacsSettings = PacsSettings()
    gateway: GatewaySettings = GatewaySettings()
    edr: EdrSettings = EdrSettings()
    backup: BackupSettings = BackupSettings()
    attestations: tuple[Attestation, ...] = ()
    has_own_ca_key: bool = Field(default=False, exclude=True)

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    def host_name(self, service: str) -> str:
        """The public DNS name of a service behind the gateway, e.g. `emr.hospital.example`."""
        return f"{service}.{self.domain}"


class SettingsError(pulumi.RunError):
    """The stack file breaks one or more rules; nothing has been created."""

    def __init__(self, problems: list[Problem], source: str = "stack configuration") -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{len(problems)} problem(s) in the {source}:\n{lines}")


def load_settings(config: pulumi.Config | None = None) -> Settings:
    """Read and validate the `hospital:` namespace of the current stack."""
    config = config or pulumi.Config(NAMESPACE)
    keys = [key for key in _stack_keys(NAMESPACE) if key != CA_PRIVATE_KEY]
    raw = {key: _read(config, key) for key in keys}
    secret = frozenset(k for k in keys if pulumi.runtime.is_config_secret(f"{NAMESPACE}:{k}"))
    # Read in plain text only to check it against the CA certificate; it is never shown.
    ca_key = config.get(CA_PRIVATE_KEY)
    source = f"stack configuration of '{pulumi.get_stack()}'"
    return validate_settings(
        raw,
        has_own_ca_key=ca_key is not None,
        own_ca_key_pem=ca_key,
        own_ca_key_is_secret=pulumi.runtime.is_config_secret(f"{NAMESPACE}:{CA_PRIVATE_KEY}"),
        source=source,
        secret_keys=secret,
    )


def validate_settings(
    raw: Mapping[str, Any],
    *,
    has_own_ca_key: bool = False,
    own_ca_key_pem: str | None = None,
    own_ca_key_is_secret: bool = True,
    source: str = "stack configuration",
    secret_keys: frozenset[str] = frozenset(),
) -> Settings:
    """Validate raw top-level values keyed by their stack key (without the namespace).

    `has_own_ca_key` tells whether the secret `caPrivateKey` is set; `own_ca_key_pem`, when
    given, is its PEM, checked against `pki.caCertificate`; `own_ca_key_is_secret` is False
    when the stack holds that key in plain text, which is refused. `secret_keys` are the top-level
    keys the stack holds as secrets (`secure:` values, which make the whole key secret): a
    problem under one of them never shows its value.
    """
    problems: list[Problem] = []
    sections: dict[str, Any] = {}
    by_key = {field.alias or name: name for name, field in Settings.model_fields.items()}

    for key in sorted(set(raw) - set(by_key) - {CA_PRIVATE_KEY}):
        problems.append(Problem(f"{NAMESPACE}:{key}", raw[key], "is not a known setting"))

    for key, name in by_key.items():
        field = Settings.model_fields[name]
        if name == "has_own_ca_key":
            continue
        if key not in raw:
            if field.is_required():
                problems.append(Problem(f"{NAMESPACE}:{key}", None, "is required"))
            continue
        try:
            sections[name] = _section_adapter(name).validate_python(raw[key])
        except ValidationError as error:
            problems.extend(_problems_from(key, error))

    for rule in CROSS_SECTION_RULES:
        if all(section in sections for section in rule.sections):
            problems.extend(rule.check(sections, has_own_ca_key))
    if has_own_ca_key and not own_ca_key_is_secret:
        problems.append(
            Problem(
                f"{NAMESPACE}:{CA_PRIVATE_KEY}",
                SECRET_SHOWN_AS,
                "is stored in plain text in the stack file; remove it and set it again with "
                f"`pulumi config set --secret {CA_PRIVATE_KEY} < ca.key`",
            )
        )
    own_ca = sections["pki"].ca_certificate if "pki" in sections else None
    if own_ca is not None and own_ca_key_pem is not None:
        problems.extend(_own_ca_key_problems(own_ca, own_ca_key_pem))

    if problems:
        raise SettingsError([_without_secrets(p, secret_keys) for p in problems], source)
    return Settings(**sections, has_own_ca_key=has_own_ca_key)


def _without_secrets(problem: Problem, secret_keys: frozenset[str]) -> Problem:
    """The problem with its value hidden when it lies under a secret key or looks like a key."""
    top_level = problem.key.removeprefix(f"{NAMESPACE}:").split(".", 1)[0].split("[", 1)[0]
    looks_secret = "PRIVATE KEY" in json.dumps(problem.value, default=str)
    if problem.value is not None and (top_level in secret_keys or looks_secret):
        return replace(problem, value=SECRET_SHOWN_AS)
    return problem


def _section_adapter(name: str) -> TypeAdapter:
    """A validator for one top-level field, keeping its constraints (pattern, bounds)."""
    field = Settings.model_fields[name]
    if not field.metadata:
        return TypeAdapter(field.annotation)
    return TypeAdapter(Annotated[field.annotation, *field.metadata])


@dataclass(frozen=True)
class CrossSectionRule:
    """A rule that needs several sections; it runs only when they all validated."""

    sections: tuple[str, ...]
    check: Callable[[dict[str, Any], bool], Iterable[Problem]]


def _subnets_disjoint(s: dict[str, Any], _: bool) -> Iterable[Problem]:
    subnets = s["network"].subnets()
    for i, first in enumerate(ZONES):
        for second in ZONES[i + 1 :]:
            if subnets[first].overlaps(subnets[second]):
                yield Problem(
                    f"{NAMESPACE}:network.{second}.subnet",
                    str(subnets[second]),
                    f"overlaps the {first} zone's subnet {subnets[first]}; zones must not overlap",
                )


def _prod_binds_explicitly(s: dict[str, Any], _: bool) -> Iterable[Problem]:
    if s["environment"] != "prod":
        return
    for audience, address in s["addresses"].model_dump().items():
        if address.is_unspecified:
            yield Problem(
                f"{NAMESPACE}:addresses.{audience}",
                str(address),
                "prod must bind published ports to a named interface address, not 0.0.0.0",
            )


def _password_length(s: dict[str, Any], _: bool) -> Iterable[Problem]:
    minimum = PASSWORD_MINIMUM[s["environment"]]
    if s["credentials"].length < minimum:
        yield Problem(
            f"{NAMESPACE}:credentials.length",
            s["credentials"].length,
            f"{s['environment']} passwords must be at least {minimum} characters",
        )


def _own_ca_has_key(s: dict[str, Any], has_own_ca_key: bool) -> Iterable[Problem]:
    if (s["pki"].ca_certificate is not None) != has_own_ca_key:
        yield Problem(
            f"{NAMESPACE}:{CA_PRIVATE_KEY}",
            SECRET_SHOWN_AS if has_own_ca_key else None,
            "the hospital CA needs both pki.caCertificate and the secret caPrivateKey "
            "(set it with `pulumi config set --secret hospital:caPrivateKey < key.pem`)",
        )


def _own_ca_key_problems(certificate_pem: str, key_pem: str) -> Iterable[Problem]:
    """The hospital CA's key must open and belong to its certificate (never shown)."""
    key_rule = f"{NAMESPACE}:{CA_PRIVATE_KEY}"
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        yield Problem(key_rule, SECRET_SHOWN_AS, "must be one unencrypted PEM private key")
        return
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != certificate.public_key().public_bytes(
        encoding, public
    ):
        yield Problem(key_rule, SECRET_SHOWN_AS, "does not belong to pki.caCertificate")


def _pki_lifetimes(s: dict[str, Any], _: bool) -> Iterable[Problem]:
    pki = s["pki"]
    if pki.early_renewal_days >= pki.certificate_validity_days:
        yield Problem(
            f"{NAMESPACE}:pki.earlyRenewalDays",
            pki.early_renewal_days,
            f"must be shorter than pki.certificateValidityDays ({pki.certificate_validity_days}),"
            " or every update would renew every certificate",
        )
    if pki.ca_certificate is None and pki.ca_validity_days <= pki.certificate_validity_days:
        yield Problem(
            f"{NAMESPACE}:pki.caValidityDays",
            pki.ca_validity_days,
            "must be longer than pki.certificateValidityDays "
            f"({pki.certificate_validity_days}), or certificates outlive the CA that signed them",
        )


def _published_ports_distinct(s: dict[str, Any], _: bool) -> Iterable[Problem]:
    addresses, seen = s["addresses"], {}
    published = [
        ("gateway.httpsPort", addresses.edge, s["gateway"].https_port),
        ("gateway.httpPort", addresses.edge, s["gateway"].http_port),
        ("pacs.dicomPort", addresses.dicom, s["pacs"].dicom_port),
        ("edr.frontendPort", addresses.agents, s["edr"].frontend_port),
        ("edr.guiPort", addresses.management, s["edr"].gui_port),
    ]
    for key, address, port in published:
        clash = seen.get((address, port)) or next(
            (
                k
                for (a, p), k in seen.items()
                if p == port and (a.is_unspecified or address.is_unspecified)
            ),
            None,
        )
        if clash:
            yield Problem(
                f"{NAMESPACE}:{key}",
                port,
                f"is already published on {address} by {clash}",
            )
        seen[(address, port)] = key


def _prod_backup(s: dict[str, Any], _: bool) -> Iterable[Problem]:
    if s["environment"] == "prod":
        yield from s["backup"].prod_problems(f"{NAMESPACE}:backup")


CROSS_SECTION_RULES = (
    CrossSectionRule(("network",), _subnets_disjoint),
    CrossSectionRule(("environment", "addresses"), _prod_binds_explicitly),
    CrossSectionRule(("environment", "credentials"), _password_length),
    CrossSectionRule(("pki",), _own_ca_has_key),
    CrossSectionRule(("pki",), _pki_lifetimes),
    CrossSectionRule(("addresses", "gateway", "pacs", "edr"), _published_ports_distinct),
    CrossSectionRule(("environment", "backup"), _prod_backup),
)


def _stack_keys(namespace: str) -> list[str]:
    """Every key the stack sets under `namespace:`, from the SDK's config and its environment."""
    prefix = f"{namespace}:"
    names = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.get_config_env())
    return sorted(name[len(prefix) :] for name in names if name.startswith(prefix))


def _read(config: pulumi.Config, key: str) -> Any:
    text = config.get(key)
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _problems_from(section: str, error: ValidationError) -> Iterable[Problem]:
    for detail in error.errors(include_url=False):
        path = ".".join(str(part) for part in (section, *detail["loc"]) if _is_key(part))
        rule = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            rule = "is not a known setting"
        # A missing field's "input" is the section around it, not a value of the field.
        value = None if detail["type"] == "missing" else detail.get("input")
        yield Problem(f"{NAMESPACE}:{path}", value, rule)


def _is_key(part: Any) -> bool:
    # pydantic adds the validator kind ("function-after[...]") to some locations.
    return not (isinstance(part, str) and part.startswith(("function-", "tagged-union[")))

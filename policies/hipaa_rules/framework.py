"""How a rule is declared: HIPAA citations, CIS tags, config defaults and resource-type scoping.

Rules stay plain `validate(args, report_violation)` functions; this module wraps them into
pulumi_policy objects so the citation suffix and the type filter are written once.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyComplianceFramework,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

HIPAA_REFERENCE = "https://www.ecfr.gov/current/title-45/subtitle-A/subchapter-C/part-164/subpart-C"

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
BUILT_IMAGE = "docker:index/image:Image"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"
STACK = "pulumi:pulumi:Stack"

Validation = Callable[[Any, Callable[..., None]], None]


def hipaa(*citations: str) -> PolicyComplianceFramework:
    """The HIPAA Security Rule framework entry naming the sections a rule supports."""
    return PolicyComplianceFramework(
        name="HIPAA",
        version="45 CFR Part 164 Subpart C",
        reference=HIPAA_REFERENCE,
        specification=", ".join(citations),
    )


def citation_suffix(citations: Sequence[str], cis: Sequence[str]) -> str:
    """The trailer every message ends with, e.g. `(HIPAA 164.312(b); CIS 5.27)`."""
    parts = ["HIPAA " + ", ".join(citations)]
    if cis:
        parts.append("CIS Docker " + ", ".join(cis))
    return "(" + "; ".join(parts) + ")"


def setting(args: Any, schema: PolicyConfigSchema | None, key: str) -> Any:
    """A policy config value; the schema default when the pack config does not set it.

    The CLI fills defaults before calling a policy; a direct call (tests) gets an empty config,
    so the default is read from the same schema the CLI would use.
    """
    configured = args.get_config() or {}
    if key in configured:
        return configured[key]
    return schema.properties[key]["default"] if schema else None


def resource_policy(
    *,
    name: str,
    description: str,
    validate: Validation,
    resource_types: Sequence[str],
    severity: Severity,
    citations: Sequence[str],
    remediation: str,
    cis: Sequence[str] = (),
    config_schema: PolicyConfigSchema | None = None,
    tags: Sequence[str] = (),
) -> ResourceValidationPolicy:
    """A resource rule that runs `validate` only on `resource_types`, citing its sources."""
    suffix = citation_suffix(citations, cis)
    wanted = frozenset(resource_types)

    def scoped(args: ResourceValidationArgs, report_violation: Callable[..., None]) -> None:
        if args.resource_type not in wanted:
            return
        validate(args, _cited(report_violation, suffix))

    policy = ResourceValidationPolicy(
        name=name,
        description=description,
        validate=scoped,
        config_schema=config_schema,
        severity=severity,
        framework=hipaa(*citations),
        tags=_tags(cis, tags),
        remediation_steps=remediation,
    )
    # Lets an offline runner skip calls that `scoped` would return from at once.
    policy.resource_types = wanted
    return policy


def stack_policy(
    *,
    name: str,
    description: str,
    validate: Validation,
    severity: Severity,
    citations: Sequence[str],
    remediation: str,
    cis: Sequence[str] = (),
    config_schema: PolicyConfigSchema | None = None,
    tags: Sequence[str] = (),
    cites_per_message: bool = False,
) -> StackValidationPolicy:
    """A stack rule over every resource's outputs, citing its sources.

    `cites_per_message=True` leaves the citation to each message (a rule spanning sections).
    """
    suffix = citation_suffix(citations, cis)

    def cited(args: StackValidationArgs, report_violation: Callable[..., None]) -> None:
        validate(args, report_violation if cites_per_message else _cited(report_violation, suffix))

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=cited,
        config_schema=config_schema,
        severity=severity,
        framework=hipaa(*citations),
        tags=_tags(cis, tags),
        remediation_steps=remediation,
    )


def schema(**properties: Mapping[str, Any]) -> PolicyConfigSchema:
    """A config schema from keyword properties (each with a default)."""
    return PolicyConfigSchema(properties={key: dict(value) for key, value in properties.items()})


def _cited(report_violation: Callable[..., None], suffix: str) -> Callable[..., None]:
    def report(message: str, urn: str | None = None) -> None:
        report_violation(f"{message} {suffix}", urn)

    return report


def _tags(cis: Sequence[str], extra: Sequence[str]) -> list[str]:
    return ["hipaa", *(f"cis-docker-{number}" for number in cis), *extra]

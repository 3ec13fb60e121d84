"""Service identity: every container is recognisably one of the hospital's services, so the rules
written for one service (database TLS, audit logging, backups, publishing) cannot miss it."""

from pulumi_policy import Severity

from .framework import CONTAINER, resource_policy, schema, setting
from .inputs import SERVICE_LABEL, service

ACCESS_CONTROL = "164.312(a)(1)"
AUDIT = "164.312(b)"

SERVICES_SCHEMA = schema(
    knownServices={
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "default": ["backup", "database", "edr", "emr", "gateway", "pacs"],
        "description": "Service names the rules know; a container must be one of them.",
    }
)


def validate_service_identity(args, report_violation):
    name = service(args.props)
    if name is None:
        report_violation(
            f"Container '{args.name}' has no `{SERVICE_LABEL}` label and an image the pack does "
            "not recognise, so no service rule (database TLS, audit logging, backups, "
            f"publishing) can judge it; add the `{SERVICE_LABEL}` label."
        )
    elif name not in setting(args, SERVICES_SCHEMA, "knownServices"):
        report_violation(
            f"Container '{args.name}' is labelled service '{name}', which no rule knows, so the "
            f"service rules skip it; use a known `{SERVICE_LABEL}` value or add it to "
            "`knownServices`."
        )


POLICIES = [
    resource_policy(
        name="container-enforce-service-identity",
        description="Every container is identified as a known hospital service.",
        validate=validate_service_identity,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[ACCESS_CONTROL, AUDIT],
        remediation=f"Label each container with `{SERVICE_LABEL}` set to its service (database, "
        "emr, pacs, gateway, edr, backup).",
        config_schema=SERVICES_SCHEMA,
    ),
]

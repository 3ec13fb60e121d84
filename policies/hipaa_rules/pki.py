"""Keys and certificates: strong key algorithms, bounded validity and timely renewal."""

from pulumi_policy import Severity

from .framework import (
    LOCALLY_SIGNED_CERT,
    PRIVATE_KEY,
    SELF_SIGNED_CERT,
    resource_policy,
    schema,
    setting,
)
from .inputs import known_items, require_known, sequence

ENCRYPTION = "164.312(a)(2)(iv)"
TRANSMISSION_ENCRYPTION = "164.312(e)(2)(ii)"
AUTHENTICATION = "164.312(d)"

KEY_SCHEMA = schema(
    minimumRsaBits={"type": "integer", "minimum": 2048, "maximum": 16384, "default": 3072},
    allowedCurves={
        "type": "array",
        "items": {"type": "string", "enum": ["P224", "P256", "P384", "P521"]},
        "default": ["P384", "P521"],
    },
    allowEd25519={"type": "boolean", "default": False},
)


def validate_key_strength(args, report_violation):
    algorithm = str(args.props.get("algorithm", "")).upper()
    if algorithm == "RSA":
        bits = int(args.props.get("rsaBits", 2048))
        minimum = setting(args, KEY_SCHEMA, "minimumRsaBits")
        if bits < minimum:
            report_violation(
                f"Key '{args.name}' is RSA-{bits}; set `rsaBits` to {minimum:g} or more, or use "
                "ECDSA P384."
            )
    elif algorithm == "ECDSA":
        curve = str(args.props.get("ecdsaCurve", "P224"))
        if curve not in setting(args, KEY_SCHEMA, "allowedCurves"):
            report_violation(
                f"Key '{args.name}' uses curve {curve}; set `ecdsaCurve` to P384 or P521."
            )
    elif algorithm == "ED25519":
        if not setting(args, KEY_SCHEMA, "allowEd25519"):
            report_violation(
                f"Key '{args.name}' is ED25519, which the services' TLS stacks here do not all "
                "accept; use ECDSA P384."
            )
    else:
        report_violation(f"Key '{args.name}' uses unknown algorithm '{algorithm}'.")


VALIDITY_SCHEMA = schema(
    maximumLeafValidityHours={"type": "integer", "minimum": 24, "maximum": 87600, "default": 9552},
    maximumCaValidityHours={"type": "integer", "minimum": 24, "maximum": 175200, "default": 87600},
    minimumEarlyRenewalHours={"type": "integer", "minimum": 0, "maximum": 8760, "default": 720},
)


def validate_certificate_validity(args, report_violation):
    is_ca = bool(args.props.get("isCaCertificate", False))
    kind = "CA certificate" if is_ca else "certificate"
    hours = int(args.props.get("validityPeriodHours", 0))
    limit_key = "maximumCaValidityHours" if is_ca else "maximumLeafValidityHours"
    limit = setting(args, VALIDITY_SCHEMA, limit_key)
    renewal = int(args.props.get("earlyRenewalHours", 0))
    minimum_renewal = setting(args, VALIDITY_SCHEMA, "minimumEarlyRenewalHours")
    if not 0 < hours <= limit:
        report_violation(
            f"The {kind} '{args.name}' is valid for {hours} hours; set `validityPeriodHours` "
            f"between 1 and {limit:g}."
        )
    if renewal < minimum_renewal or renewal >= hours:
        report_violation(
            f"The {kind} '{args.name}' renews {renewal} hours before expiry; set "
            f"`earlyRenewalHours` to at least {minimum_renewal:g} and below its validity."
        )


TLS_USES = {"server_auth", "client_auth"}


def validate_certificate_uses(args, report_violation):
    # The forbidden use is judged on the known uses; a missing one only once every use is known.
    listed = sequence(args.props, "allowedUses")
    uses = {str(use) for use in known_items(listed)}
    is_ca = bool(args.props.get("isCaCertificate", False))
    if not is_ca and "cert_signing" in uses:
        report_violation(
            f"Leaf certificate '{args.name}' may sign certificates; remove `cert_signing`."
        )
    if is_ca and "cert_signing" not in uses:
        require_known(listed)
        report_violation(
            f"CA certificate '{args.name}' cannot sign certificates; add `cert_signing` to "
            "`allowedUses`."
        )
    if not is_ca and not uses & TLS_USES:
        require_known(listed)
        report_violation(
            f"Certificate '{args.name}' allows neither server_auth nor client_auth; list the "
            "TLS role it serves in `allowedUses`."
        )


POLICIES = [
    resource_policy(
        name="privatekey-enforce-key-strength",
        description="Private keys are ECDSA P-384/P-521 or RSA of at least 3072 bits.",
        validate=validate_key_strength,
        resource_types=[PRIVATE_KEY],
        severity=Severity.HIGH,
        citations=[ENCRYPTION, TRANSMISSION_ENCRYPTION],
        remediation="Use `algorithm='ECDSA', ecdsaCurve='P384'` or RSA with `rsaBits>=3072`.",
        config_schema=KEY_SCHEMA,
    ),
    resource_policy(
        name="certificate-configure-validity",
        description="Certificates have bounded validity and renew early enough to never expire.",
        validate=validate_certificate_validity,
        resource_types=[SELF_SIGNED_CERT, LOCALLY_SIGNED_CERT],
        severity=Severity.MEDIUM,
        citations=[TRANSMISSION_ENCRYPTION, AUTHENTICATION],
        remediation="Set `validityPeriodHours` (leaf at most 398 days) and `earlyRenewalHours` "
        "(at least 30 days).",
        config_schema=VALIDITY_SCHEMA,
    ),
    resource_policy(
        name="certificate-enforce-allowed-uses",
        description="CA certificates sign, leaf certificates serve TLS and cannot sign.",
        validate=validate_certificate_uses,
        resource_types=[SELF_SIGNED_CERT, LOCALLY_SIGNED_CERT],
        severity=Severity.MEDIUM,
        citations=[AUTHENTICATION, TRANSMISSION_ENCRYPTION],
        remediation="List `cert_signing` on the CA only, `server_auth`/`client_auth` on leaves.",
    ),
]

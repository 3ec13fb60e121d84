"""Passwords: generated ones meet the password policy and rotate; no image default survives.

Values read here may be secrets. Messages name variables and settings, never their values.
"""

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime

from pulumi_policy import Severity

from .framework import CONTAINER, RANDOM_PASSWORD, resource_policy, schema, setting
from .inputs import environment, mapping, service, uploads_text

AUTHENTICATION = "164.312(d)"
PASSWORD_MANAGEMENT = "164.308(a)(5)(ii)(D)"
UNIQUE_USER = "164.312(a)(2)(i)"

# Variable -> the value an image falls back to when the variable is unset (None: no fallback).
IMAGE_DEFAULTS = {
    "emr": {"OE_PASS": "pass", "MYSQL_PASS": "openemr"},
    "edr": {"VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD": "password"},
}
KNOWN_DEFAULTS = {
    "OE_PASS": {"pass"},
    "MYSQL_PASS": {"openemr"},
    "MYSQL_ROOT_PASS": {"root", "openemr"},
    "VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD": {"password"},
    "MARIADB_ROOT_PASSWORD": {"root", "password"},
    "MYSQL_ROOT_PASSWORD": {"root", "password"},
}
EMPTY_ROOT_SWITCHES = ("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD")
WEAK_VALUES = {"", "admin", "changeme", "pass", "password", "secret", "root", "orthanc", "openemr"}
SECRET_NAME_ENDINGS = ("PASS", "PASSWORD", "SECRET")
ORTHANC_DEFAULT_USERS = {"orthanc": "orthanc"}
EDR_SELF_CONFIGURED = ("VELOCIRAPTOR_NO_INITIALIZE", "VELOCIRAPTOR_LITERAL_CONFIG")


def default_password_findings(props) -> list[str]:
    """Reasons the container keeps a known default or empty password (names only)."""
    variables = environment(props)
    findings = []
    for name, value in variables.items():
        if value in KNOWN_DEFAULTS.get(name, ()):
            findings.append(f"{name} is the image's published default")
        elif name.endswith(SECRET_NAME_ENDINGS) and value.lower() in WEAK_VALUES:
            findings.append(f"{name} is empty or a well-known weak password")
    for switch in EMPTY_ROOT_SWITCHES:
        if variables.get(switch, "") not in ("", "0", "no", "false"):
            findings.append(f"{switch} allows a database root account without password")
    fallbacks = IMAGE_DEFAULTS.get(service(props) or "", {})
    if fallbacks:
        # Judging an unset variable needs every entry: an unknown one may be that variable.
        variables = environment(props, complete=True)
    if not any(key in variables for key in EDR_SELF_CONFIGURED):
        findings += [
            f"{name} is unset, so the image uses its default"
            for name in fallbacks
            if name not in variables
        ]
    return findings + orthanc_default_user_findings(props)


def orthanc_documents(props) -> list[tuple[str, object]]:
    """(where, parsed JSON) of every uploaded JSON file and Orthanc JSON variable."""
    sources = list(uploads_text(props, ".json"))
    variables = environment(props)
    if "ORTHANC_JSON" in variables:
        sources.append(("ORTHANC_JSON", variables["ORTHANC_JSON"]))
    if "ORTHANC__REGISTERED_USERS" in variables:
        users = variables["ORTHANC__REGISTERED_USERS"]
        sources.append(("ORTHANC__REGISTERED_USERS", f'{{"RegisteredUsers": {users}}}'))
    documents = []
    for where, text in sources:
        try:
            documents.append((where, json.loads(text)))
        except ValueError:
            continue
    return documents


def orthanc_default_user_findings(props) -> list[str]:
    findings = []
    for path, document in orthanc_documents(props):
        users = document.get("RegisteredUsers", {}) if isinstance(document, dict) else {}
        if isinstance(users, dict) and any(
            users.get(user) == secret for user, secret in ORTHANC_DEFAULT_USERS.items()
        ):
            findings.append(f"{path} registers the default Orthanc account")
        if isinstance(document, dict) and document.get("AuthenticationEnabled") is False:
            findings.append(f"{path} turns Orthanc authentication off")
    return findings


def validate_default_credentials(args, report_violation):
    for finding in default_password_findings(args.props):
        report_violation(
            f"Container '{args.name}': {finding}; supply a generated password (a *_FILE "
            "variable or uploaded file where the image allows)."
        )


LENGTH_SCHEMA = schema(
    minimumLength={"type": "integer", "minimum": 8, "maximum": 128, "default": 12}
)


def validate_length(args, report_violation):
    length = int(args.props.get("length", 0))
    minimum = setting(args, LENGTH_SCHEMA, "minimumLength")
    if length < minimum:
        report_violation(
            f"Password '{args.name}' is {length} characters long; set `length` to at least "
            f"{minimum:g}."
        )


CHARACTER_CLASSES = {
    "minUpper": "upper",
    "minLower": "lower",
    "minNumeric": "numeric",
    "minSpecial": "special",
}


def validate_character_classes(args, report_violation):
    for minimum_key, switch in CHARACTER_CLASSES.items():
        if not args.props.get(switch, True):
            report_violation(
                f"Password '{args.name}' excludes {switch} characters; remove `{switch}=False`."
            )
        elif int(args.props.get(minimum_key, 0)) < 1:
            report_violation(
                f"Password '{args.name}' does not guarantee a {switch} character; set "
                f"`{minimum_key}` to at least 1 (the provider default is 0)."
            )


ROTATION_SCHEMA = schema(
    maximumAgeDays={"type": "integer", "minimum": 1, "maximum": 365, "default": 90},
    keeper={"type": "string", "default": "rotation", "description": "The keeper holding the date."},
)


def rotation_date(keepers: Mapping, keeper: str) -> date | None:
    """The ISO date in the rotation keeper, None when absent or unreadable."""
    try:
        return date.fromisoformat(str(keepers.get(keeper, ""))[:10])
    except ValueError:
        return None


def validate_rotation(args, report_violation):
    keeper = setting(args, ROTATION_SCHEMA, "keeper")
    rotated = rotation_date(mapping(args.props, "keepers"), keeper)
    limit = setting(args, ROTATION_SCHEMA, "maximumAgeDays")
    today = datetime.now(UTC).date()
    if rotated is None:
        report_violation(
            f"Password '{args.name}' has no `keepers.{keeper}` ISO date; add one so changing it "
            "rotates the password."
        )
    elif (today - rotated).days > limit:
        report_violation(
            f"Password '{args.name}' was last rotated {(today - rotated).days} days ago, more "
            f"than {limit:g}; move `keepers.{keeper}` (the `hospital:` rotation setting) to today."
        )
    elif rotated > today:
        report_violation(
            f"Password '{args.name}' has a rotation date in the future; use the date it was "
            "actually rotated."
        )


POLICIES = [
    resource_policy(
        name="container-disallow-default-credentials",
        description="No container keeps an image's default, empty or well-known password.",
        validate=validate_default_credentials,
        resource_types=[CONTAINER],
        severity=Severity.CRITICAL,
        citations=[AUTHENTICATION, PASSWORD_MANAGEMENT, UNIQUE_USER],
        remediation="Pass a RandomPassword result to every password variable or file.",
        reads_files=True,
    ),
    resource_policy(
        name="randompassword-configure-length",
        description="Generated passwords are at least the policy's minimum length.",
        validate=validate_length,
        resource_types=[RANDOM_PASSWORD],
        severity=Severity.HIGH,
        citations=[PASSWORD_MANAGEMENT, AUTHENTICATION],
        remediation="Raise `length` (the hospital password policy asks for 12, prod for 16).",
        config_schema=LENGTH_SCHEMA,
    ),
    resource_policy(
        name="randompassword-enforce-character-classes",
        description="Generated passwords contain upper, lower, numeric and special characters.",
        validate=validate_character_classes,
        resource_types=[RANDOM_PASSWORD],
        severity=Severity.HIGH,
        citations=[PASSWORD_MANAGEMENT, AUTHENTICATION],
        remediation="Set `minUpper`, `minLower`, `minNumeric` and `minSpecial` to 1 or more.",
    ),
    resource_policy(
        name="randompassword-enforce-rotation",
        description="Generated passwords carry a rotation date no older than the allowed age.",
        validate=validate_rotation,
        resource_types=[RANDOM_PASSWORD],
        severity=Severity.MEDIUM,
        citations=[PASSWORD_MANAGEMENT],
        remediation="Set `keepers={'rotation': '<ISO date>'}` and advance it at least every 90 "
        "days; changing it replaces the password.",
        config_schema=ROTATION_SCHEMA,
    ),
]

"""Organisational controls no resource can show, signed off as attestations (who, when, evidence).

A stack policy cannot read stack config. The program exports `hospital:attestations` as the
stack output `attestations`, which reaches stack policies as the outputs of the
`pulumi:pulumi:Stack` resource; the pack config key `attestations` is the fallback for
programs that do not export them. Both use the same shape: [{item, by, date, evidence}].
"""

from collections.abc import Mapping
from datetime import UTC, date, datetime

from pulumi_policy import Severity

from .framework import STACK, citation_suffix, schema, setting, stack_policy
from .inputs import every_item, sequence

TRAINING = "164.308(a)(5)(i)"
RISK_ANALYSIS = "164.308(a)(1)(ii)(A)"
TESTING = "164.308(a)(7)(ii)(D)"
EVALUATION = "164.308(a)(8)"
PHYSICAL = "164.310(a)(1)"
TRANSMISSION = "164.312(e)(1)"

ITEMS = (
    "staff-training",
    "restore-test",
    "risk-assessment",
    "third-party-assessment",
    "vpn",
    "physical-security",
)
EXTRA_ITEMS = ("topology-review", "alert-routing")
ITEM_CITATIONS = {
    "staff-training": TRAINING,
    "restore-test": TESTING,
    "risk-assessment": RISK_ANALYSIS,
    "third-party-assessment": EVALUATION,
    "vpn": TRANSMISSION,
    "physical-security": PHYSICAL,
    "topology-review": RISK_ANALYSIS,
    "alert-routing": "164.308(a)(1)(ii)(D)",
}

ATTESTATION_SCHEMA = schema(
    requiredItems={
        "type": "array",
        "items": {"type": "string", "enum": [*ITEMS, *EXTRA_ITEMS]},
        "default": list(ITEMS),
    },
    maximumAgeDays={"type": "integer", "minimum": 1, "maximum": 1095, "default": 365},
    itemMaximumAgeDays={
        "type": "object",
        "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 1095},
        "default": {"restore-test": 180},
        "description": "Per-item age limits overriding maximumAgeDays.",
    },
    attestations={
        "type": "array",
        "items": {
            "type": "object",
            "required": ["item", "by", "date", "evidence"],
            "properties": {
                "item": {"type": "string"},
                "by": {"type": "string", "minLength": 1},
                "date": {"type": "string", "format": "date"},
                "evidence": {"type": "string", "minLength": 1},
            },
        },
        "default": [],
        "description": "Fallback when the program does not export `attestations`.",
    },
)


def recorded_attestations(args) -> list[Mapping]:
    """Attestations from the Stack resource's `attestations` output, else the pack config.

    Every entry is read: an unknown one may be the attestation an item lacks.
    """
    for resource in args.resources:
        if resource.resource_type == STACK and "attestations" in resource.props:
            return [
                entry
                for entry in every_item(sequence(resource.props, "attestations"))
                if isinstance(entry, Mapping)
            ]
    return list(setting(args, ATTESTATION_SCHEMA, "attestations"))


def attested_on(entry: Mapping) -> date | None:
    try:
        return date.fromisoformat(str(entry.get("date", ""))[:10])
    except ValueError:
        return None


def complete(entry: Mapping) -> bool:
    """An entry with a readable date, a signer and evidence."""
    return attested_on(entry) is not None and bool(entry.get("by")) and bool(entry.get("evidence"))


def assess(entries, default_age: int, item_ages: Mapping, today: date) -> dict[str, str]:
    """Status of every attestation item named in `entries` or known to the pack.

    `attested`, `missing`, `expired (N days)`, `future-dated`. The newest complete entry dated
    today or earlier decides; a future-dated entry never hides it, and decides only when it is
    an item's sole complete entry. Incomplete entries (no date, signer or evidence) count as
    absent.
    """
    newest: dict[str, date] = {}
    future: set[str] = set()
    for entry in entries:
        if not complete(entry):
            continue
        item, when = str(entry.get("item")), attested_on(entry)
        if when > today:
            future.add(item)
        else:
            newest[item] = max(when, newest.get(item, when))
    status = {}
    for item in (*ITEMS, *EXTRA_ITEMS, *newest, *future):
        when = newest.get(item)
        if when is None:
            status[item] = "future-dated" if item in future else "missing"
        elif (today - when).days > item_ages.get(item, default_age):
            status[item] = f"expired ({(today - when).days} days)"
        else:
            status[item] = "attested"
    return status


def cite(item: str) -> str:
    return citation_suffix([ITEM_CITATIONS.get(item, EVALUATION)], ())


def validate_attestations(args, report_violation):
    entries = recorded_attestations(args)
    today = datetime.now(UTC).date()
    for entry in entries:
        item = str(entry.get("item"))
        if not complete(entry):
            report_violation(
                f"Attestation '{item}' lacks a date, a signer or evidence; complete it in "
                f"`hospital:attestations`. {cite(item)}"
            )
        elif attested_on(entry) > today:
            report_violation(
                f"Attestation '{item}' is future-dated; record the date the control was "
                f"actually performed. {cite(item)}"
            )
    status = assess(
        entries,
        setting(args, ATTESTATION_SCHEMA, "maximumAgeDays"),
        setting(args, ATTESTATION_SCHEMA, "itemMaximumAgeDays"),
        today,
    )
    for item in setting(args, ATTESTATION_SCHEMA, "requiredItems"):
        if status[item] == "missing":
            report_violation(
                f"No attestation for '{item}'; record who signed it off, when, and the "
                f"evidence in `hospital:attestations`. {cite(item)}"
            )
        elif status[item] == "future-dated":
            continue  # its entry was reported above; no current one stands in for it
        elif status[item] != "attested":
            report_violation(
                f"Attestation '{item}' is {status[item]}; repeat the control and record it "
                f"again. {cite(item)}"
            )


POLICIES = [
    stack_policy(
        name="stack-missing-attestations",
        description="Every organisational control is attested, recently, with signer and evidence.",
        validate=validate_attestations,
        severity=Severity.HIGH,
        citations=[TRAINING, RISK_ANALYSIS, TESTING, EVALUATION, PHYSICAL, TRANSMISSION],
        remediation="Add {item, by, date, evidence} entries to `hospital:attestations` for "
        "staff training, restore test, risk assessment, third-party assessment, VPN and "
        "physical security.",
        config_schema=ATTESTATION_SCHEMA,
        cites_per_message=True,
    ),
]

"""The `compliance` export: which policy pack config judges a stack, and when each dated control
(an attestation, the password rotation) falls due under that config's age limits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from components.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
PACK_CONFIG_DIR = REPO_ROOT / "policies" / "config"
ATTESTATION_RULE = "stack-missing-attestations"
ROTATION_RULE = "randompassword-enforce-rotation"


class PackConfigFileError(ValueError):
    """A pack config file that cannot be read as the pack's JSON document."""


def pack_config_for(stack: str, environment: str, directory: Path = PACK_CONFIG_DIR) -> Path:
    """The pack config a stack is checked with: its own `<stack>.json` when there is one, else
    the one of its environment (`dev.json`, `prod.json`).

    `python -m tools check`, `python -m tools docs` and scripts/pulumi-local.sh choose alike,
    so a `staging` stack of the prod environment is judged by prod.json unless it has its own.
    """
    own = directory / f"{stack}.json"
    return own if own.exists() else directory / f"{environment}.json"


def read_pack_config(path: Path) -> dict[str, Any]:
    """The JSON object of a pack config file; PackConfigFileError naming the file otherwise."""
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise PackConfigFileError(f"cannot read the pack config {path}: {error.strerror}") from None
    except ValueError as error:
        raise PackConfigFileError(f"the pack config {path} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise PackConfigFileError(f"the pack config {path} must be a JSON object")
    return document


def compliance_summary(
    stack: str, settings: Settings, directory: Path = PACK_CONFIG_DIR
) -> dict[str, Any]:
    """The `compliance` export, from the pack config `pack_config_for` picks in `directory`.

    The program cannot run the pack (the engine or `python -m tools check` does), so this claims
    no verdict: it names the pack config that applies and its enforcement, and dates every
    attestation and the password rotation against the age limits that config sets.
    """
    # Imported here: only this export needs the rules' defaults, and the rules import no
    # component, so the pack stays loadable on its own.
    from policies.hipaa_rules.attestations import ATTESTATION_SCHEMA
    from policies.hipaa_rules.credentials import ROTATION_SCHEMA

    path = pack_config_for(stack, settings.environment, directory)
    document = read_pack_config(path)
    default_level = document.get("all", "advisory")
    attestation = _rule_properties(document, ATTESTATION_RULE, ATTESTATION_SCHEMA.properties)
    rotation = _rule_properties(document, ROTATION_RULE, ROTATION_SCHEMA.properties)

    entries = [
        {"item": entry.item, **_due(entry.date, _age_limit(attestation, entry.item))}
        for entry in sorted(settings.attestations, key=lambda a: (a.item, a.date))
    ]
    return {
        "packConfig": _relative(path),
        "enforcement": default_level,
        "attestations": {
            "level": _rule_level(document, ATTESTATION_RULE, default_level),
            "required": list(attestation["requiredItems"]),
            "entries": entries,
        },
        "passwordRotation": {
            "level": _rule_level(document, ROTATION_RULE, default_level),
            **_due(settings.credentials.rotation, rotation["maximumAgeDays"]),
        },
    }


def _rule_properties(document: Mapping, rule: str, schema: Mapping[str, Mapping]) -> dict:
    """A rule's settings in the pack config, with the rule's defaults for those it leaves out."""
    entry = document.get(rule, {})
    given = entry if isinstance(entry, Mapping) else {}
    return {key: given.get(key, spec.get("default")) for key, spec in schema.items()}


def _rule_level(document: Mapping, rule: str, default: str) -> str:
    """A rule's enforcement: `"rule": "level"`, `{"enforcementLevel": ...}` or the pack's."""
    entry = document.get(rule, {})
    if isinstance(entry, str):
        return entry
    return entry.get("enforcementLevel", default)


def _age_limit(attestation: Mapping[str, Any], item: str) -> int:
    return attestation["itemMaximumAgeDays"].get(item, attestation["maximumAgeDays"])


def _due(when: date, maximum_age_days: int) -> dict[str, Any]:
    return {
        "date": when.isoformat(),
        "maximumAgeDays": maximum_age_days,
        "expires": (when + timedelta(days=maximum_age_days)).isoformat(),
    }


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)

"""The stack exports as the docs read them: a JSON Schema per version, and its validation.

A `pulumi stack output --json` file and the offline preview's exports both pass through here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

from components.datacenter import EXPORT_SCHEMA_VERSION
from tools.recording import REDACTED, UNKNOWN_MARK

OUTSIDE_PARTY = re.compile(
    r"^(staff|security-team|agents|backup-storage|internet|modality:[A-Za-z0-9_-]+)$"
)
"""The parties outside the host that a flow may name."""

SECRET_EXPORTS = frozenset({"credentials"})
"""Exports that hold secrets by design; the docs never read them."""

STRING = {"type": "string", "minLength": 1}
BOOLEAN = {"type": "boolean"}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
COUNT = {"type": "integer", "minimum": 0}
ADDRESS = {"type": "string", "format": "ipv4"}
HOST = {"type": "string", "minLength": 1, "pattern": r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$"}
"""An IPv4 address or a DNS host name, as a modality's address may be."""
URL = {"type": "string", "pattern": r"^https://[^\s/]+/\S*$"}
TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"}
DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
DATE_OR_NULL = {**DATE, "type": ["string", "null"]}
SERVICE = {"type": "string", "pattern": r"^[a-z][a-z0-9-]*$"}
ZONE = {"enum": ["edge", "clinical", "data", "security"]}
LEVEL = {"enum": ["advisory", "mandatory", "remediate", "disabled"]}
DUE = {"date": DATE, "maximumAgeDays": COUNT, "expires": DATE}


def _array(items: dict, min_items: int = 0) -> dict:
    return {"type": "array", "items": items, "minItems": min_items}


def _map(values: dict) -> dict:
    return {"type": "object", "additionalProperties": values}


def _object(required: dict, optional: dict | None = None) -> dict:
    """An object with these required and optional keys; other keys are allowed and ignored."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


PUBLISHED_PORT = _object(
    {
        "address": ADDRESS,
        "hostPort": PORT,
        "containerPort": PORT,
        "protocol": {"enum": ["tcp", "udp"]},
        "purpose": STRING,
    }
)

FLOW = _object(
    {
        "source": STRING,
        "target": STRING,
        "port": PORT,
        "protocol": STRING,
        "purpose": STRING,
    },
    {"zone": ZONE, "address": HOST},
)
"""A connection one party opens to another. Parties are service names (keys of `services`)
or outside parties (OUTSIDE_PARTY); `zone` is the trust zone it crosses inside the host,
`address` the host address it arrives on (or the outside address or host name it goes to)."""

CERTIFICATE = _object(
    {"subject": STRING, "sans": _array(STRING), "sha256": STRING, "notAfter": TIMESTAMP}
)

DICOM_SERVICE = {"enum": ["echo", "find", "get", "move", "store"]}

DICOM = _object(
    {"aet": STRING, "host": ADDRESS, "port": PORT, "endpoint": STRING, "tls": BOOLEAN},
    {
        # Added within v1.
        "modalities": _map(
            _object(
                {
                    "aet": STRING,
                    "host": HOST,
                    "port": PORT,
                    "allow": _array(DICOM_SERVICE),
                    "tls": BOOLEAN,
                }
            )
        ),
    },
)
"""The PACS's DICOM server as modalities reach it, and the peers it trusts."""

EDR_SERVER_CERTIFICATE = {
    **_object(
        {
            "name": STRING,
            "issuer": STRING,
            "validityDays": COUNT,
            "status": {"enum": ["recorded", "unrecorded"]},
            "check": STRING,
            "watchedBy": STRING,
        },
        {
            "issued": DATE_OR_NULL,
            "notAfter": DATE_OR_NULL,
            "renewFrom": DATE_OR_NULL,
            "record": STRING,
        },
    ),
    # A recorded issue date comes with the expiry computed from it.
    "if": {"required": ["status"], "properties": {"status": {"const": "recorded"}}},
    "then": {"required": ["issued", "notAfter"], "properties": {"issued": DATE, "notAfter": DATE}},
}
"""The certificate Velociraptor makes for itself at first start: dated from the stack file."""

EDR = _object(
    {
        "guiUrl": URL,
        "agentFrontendUrl": URL,
        "adminUser": STRING,
        "adminPasswordAccount": STRING,
        "serverEvents": _array(STRING),
        "clientEvents": _array(STRING),
        "serverCertificate": EDR_SERVER_CERTIFICATE,
        "enrolment": _object(
            {
                "serverUrl": URL,
                "clientConfigCommand": STRING,
                "hostInstall": _array(STRING, min_items=1),
            },
            {"debianPackageCommand": STRING, "binaryCommand": STRING, "note": STRING},
        ),
        "auditRules": _array(STRING),
    },
    {
        "guiAddress": ADDRESS,
        "artifacts": _array(STRING),
        "artifactAccounts": _map(STRING),
        "volumes": _map(STRING),
        # Added within v1.
        "monitoringSetup": _array(STRING, min_items=1),
    },
)
"""The Velociraptor server: where to sign in, what it monitors, how endpoints enrol."""

BACKUP = {
    **_object(
        {"enabled": BOOLEAN},
        {
            "schedule": STRING,
            "timeZone": STRING,
            "rpoHours": {"type": "integer", "minimum": 1},
            "retention": _object({"daily": COUNT, "weekly": COUNT}),
            "destination": STRING,
            "recipients": _array(STRING, min_items=1),
            "recipientFingerprints": _array(STRING),
            "container": STRING,
            "image": STRING,
            "baseImage": STRING,
            "coveredVolumes": _array(STRING),
            "database": {
                **_object({"schema": STRING, "host": STRING, "binlogVolume": STRING}),
                "type": ["object", "null"],
            },
            "restoreSteps": _array(STRING, min_items=1),
            "restoreCommands": {"type": "object"},
        },
    ),
    # A disabled plan is `{"enabled": false}` alone; an enabled one says when, where and how.
    "if": {"required": ["enabled"], "properties": {"enabled": {"const": True}}},
    "then": {
        "required": [
            "schedule",
            "timeZone",
            "rpoHours",
            "retention",
            "destination",
            "recipients",
            "container",
            "coveredVolumes",
            "restoreSteps",
        ]
    },
}
"""The backup job's plan and its restore runbook."""

EXPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"urn:hospital-datacenter:exports:v{EXPORT_SCHEMA_VERSION}",
    "title": "Hospital data center stack exports",
    "type": "object",
    "required": [
        "schemaVersion",
        "environment",
        "domain",
        "planned",
        "endpoints",
        "networks",
        "volumes",
        "certificates",
        "services",
        "ports",
        "flows",
        "credentialAccounts",
        "passwordPolicy",
        "pki",
        "logging",
        "attestations",
    ],
    "properties": {
        "schemaVersion": {"const": EXPORT_SCHEMA_VERSION},
        "environment": {"enum": ["dev", "prod"]},
        "domain": STRING,
        # True when the values come from a preview, false after `pulumi up`.
        "planned": BOOLEAN,
        "endpoints": _map(STRING),
        "networks": _map(_object({"name": STRING, "subnet": STRING, "internal": BOOLEAN})),
        "volumes": _array(
            _object(
                {
                    "name": STRING,
                    "service": SERVICE,
                    "dataClass": {"enum": ["phi", "config", "logs", "backup", "scratch"]},
                    "backedUp": BOOLEAN,
                }
            )
        ),
        "certificates": {
            **_map(CERTIFICATE),
            "required": ["ca"],
        },
        "services": _map(
            _object(
                {
                    "container": STRING,
                    "image": STRING,
                    "zones": _array(ZONE, min_items=1),
                    "ports": _array(PUBLISHED_PORT),
                },
                {
                    "aliases": _array(STRING),
                    "memoryMb": COUNT,
                    "readOnlyRoot": BOOLEAN,
                    # The never-started container whose volumes hold the uploaded files, and the
                    # directories they are mounted at (read-only).
                    "files": _object({"carrier": STRING, "directories": _array(STRING)}),
                },
            )
        ),
        "ports": _array(
            _object({**PUBLISHED_PORT["properties"], "service": SERVICE, "container": STRING})
        ),
        "flows": _array(FLOW),
        "credentialAccounts": _array(STRING),
        "passwordPolicy": _object(
            {"length": COUNT, "characterClasses": _array(STRING), "rotation": DATE}
        ),
        "pki": _object(
            {
                "organization": STRING,
                "algorithm": STRING,
                "ownCa": BOOLEAN,
                "certificateValidityDays": COUNT,
                "earlyRenewalDays": COUNT,
            }
        ),
        "logging": _object({"driver": STRING, "maxSize": STRING, "maxFile": COUNT}),
        "attestations": _array(
            _object({"item": STRING, "by": STRING, "date": DATE, "evidence": STRING})
        ),
        # Optional: a stack without the service exports none, and the document says so.
        "dicom": DICOM,
        "edr": EDR,
        "backup": BACKUP,
        # Added within v1; a stack deployed before has neither.
        "stack": STRING,
        "compliance": _object(
            {
                "packConfig": STRING,
                "enforcement": LEVEL,
                "attestations": _object(
                    {
                        "level": LEVEL,
                        "required": _array(STRING),
                        "entries": _array(_object({"item": STRING, **DUE})),
                    }
                ),
                "passwordRotation": _object({"level": LEVEL, **DUE}),
            }
        ),
    },
}
"""Version 1 of the exports. Keys not named here are allowed (later additions) and ignored."""


class ExportSchemaError(ValueError):
    """Stack exports that the docs cannot read: every problem, each naming its export."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"{source} does not match export schema v{EXPORT_SCHEMA_VERSION} "
            f"({len(problems)} problem(s)):\n{lines}"
        )


def validate_exports(exports: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The exports, checked against the schema; ExportSchemaError lists what does not match.

    `source` names where they came from (a file name, or `offline preview of prod`).
    """
    if not isinstance(exports, Mapping):
        raise ExportSchemaError(source, ["the stack outputs must be one JSON object"])
    version = exports.get("schemaVersion")
    if version != EXPORT_SCHEMA_VERSION:
        raise ExportSchemaError(
            source,
            [
                f"export 'schemaVersion' is {version!r}; this tool reads version "
                f"{EXPORT_SCHEMA_VERSION} (regenerate the outputs with the matching program)"
            ],
        )

    problems = [
        f"export '{path}' is {marker}: the document needs it in plain text, so the program "
        "must not mark it secret"
        for path, marker in _hidden_values(exports)
    ]
    validator = jsonschema.Draft202012Validator(
        EXPORT_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for error in sorted(validator.iter_errors(exports), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(part) for part in error.absolute_path)
        if _is_hidden(error.instance):
            continue
        problems.append(f"export '{path or '(top level)'}': {error.message}")
    if not problems:
        problems += _dangling_references(exports)
    if problems:
        raise ExportSchemaError(source, problems)
    return {
        key: _whole_numbers(value) for key, value in exports.items() if key not in SECRET_EXPORTS
    }


def _dangling_references(exports: Mapping[str, Any]) -> list[str]:
    """Ports, volumes and flows that name a service or party the exports do not define."""
    services = exports["services"]
    problems = [
        f"export 'ports.{index}.service' names {port['service']!r}, which is not in 'services'"
        for index, port in enumerate(exports["ports"])
        if port["service"] not in services
    ]
    for index, flow in enumerate(exports["flows"]):
        for end in ("source", "target"):
            party = flow[end]
            if party not in services and not OUTSIDE_PARTY.match(party):
                problems.append(
                    f"export 'flows.{index}.{end}' names {party!r}: neither a service nor an "
                    "outside party"
                )
    return problems


def _whole_numbers(value: Any) -> Any:
    """A copy with 365.0 as 365: the engine's wire format carries every number as a double."""
    if isinstance(value, Mapping):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _hidden_values(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, marker) for every `[secret]` or `[unknown]` outside the secret exports."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not path and key in SECRET_EXPORTS:
                continue
            yield from _hidden_values(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _hidden_values(item, f"{path}.{index}")
    elif _is_hidden(value):
        yield path, "a secret ([secret])" if value == REDACTED else "unknown until deployed"


def _is_hidden(value: Any) -> bool:
    return value in (REDACTED, UNKNOWN_MARK)

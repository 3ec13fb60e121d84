"""`python -m tools docs`: a stack's operations and audit document, generated from its exports.

The document is a pure function of the exports (and of a policy check report when given), so
the offline preview and `pulumi stack output --json` of the same stack give the same text.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.commandline import add_stack_arguments
from tools.export_schema import ExportSchemaError, validate_exports
from tools.preview import REPO_ROOT, run_program
from tools.recording import Recording

NAME = "docs"
HELP = "write docs/<stack>.md from the offline preview or from `pulumi stack output --json`"

DOCS_DIR = REPO_ROOT / "docs"
PREVIEW_SEED = "hospital-docs"
PREVIEW_CLOCK = datetime(2026, 1, 1, tzinfo=UTC)
"""The preview issues its stand-in certificates at this fixed moment so that its document is
reproducible; the document shows no preview fingerprint or expiry (they are `issued at deploy`)."""

OUTSIDE_PARTIES = {
    "staff": "Staff browsers",
    "security-team": "Security team (management network)",
    "agents": "EDR agents on endpoints",
    "backup-storage": "Backup storage",
    "internet": "Internet",
}
ZONE_ROLES = {
    "edge": "the TLS gateway that staff browsers reach",
    "clinical": "the gateway's upstreams: OpenEMR and Orthanc",
    "data": "the database and the services that read or back it up",
    "security": "the EDR server, and the gateway's path to its GUI",
}
DATA_CLASSES = {
    "phi": "protected health information",
    "config": "configuration and keys",
    "logs": "logs and audit trails",
    "backup": "encrypted backup archives",
    "scratch": "temporary files of running queries (not backed up)",
}
OUTPUTS_FILE = "outputs-{stack}.json"
COMPLIANCE_FILE = "compliance-{stack}.json"
OUTPUTS_COMMAND = "pulumi stack output --stack {stack} --json > " + OUTPUTS_FILE
CHECK_COMMAND = "python -m tools check --stack {stack} --format json > " + COMPLIANCE_FILE
DOCS_COMMAND = (
    f"python -m tools docs --stack {{stack}} --outputs {OUTPUTS_FILE} "
    f"--compliance {COMPLIANCE_FILE}"
)
"""How a deployed stack's document is made: its outputs, the policy check report, the docs."""
REGENERATE_COMMANDS = (OUTPUTS_COMMAND, CHECK_COMMAND, DOCS_COMMAND)
LOCAL_STATE = "file://$PWD/.pulumi-state"
"""The Pulumi backend `make up` uses: a file backend inside the repository."""
LOG_PATTERN = "error|fatal|denied|fail"


class DocsInputError(Exception):
    """An input file the docs cannot use (unreadable, not JSON, or not a check report)."""


# ----------------------------------------------------------------------------- inputs


def stack_outputs(recording: Recording) -> dict[str, Any]:
    """The exports as `pulumi stack output --json` prints them: secrets as `[secret]`."""
    return json.loads(
        json.dumps({name: export.redacted() for name, export in recording.exports.items()})
    )


def compliance_report(recording: Recording, stack: str) -> dict[str, Any] | None:
    """The policy check's JSON report over `recording`, None when the check tool is missing."""
    try:
        from tools import check
    except ImportError:
        return None
    pack_config_file = check.stack_pack_config(recording)
    if not pack_config_file.exists():
        return None
    result = check.evaluate(
        recording,
        check.PackConfig.load(pack_config_file),
        config_name=str(pack_config_file.relative_to(REPO_ROOT)),
    )
    return json.loads(check.render_json(result))


def read_json(path: Path, what: str) -> Any:
    """One JSON document from `path`; DocsInputError naming the file and what it should be."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise DocsInputError(f"cannot read the {what} {path}: {error.strerror}") from None
    except ValueError as error:
        raise DocsInputError(f"the {what} {path} is not JSON: {error}") from None


# ----------------------------------------------------------------------------- rendering


def render(
    stack: str, outputs: Mapping[str, Any], compliance: Mapping[str, Any] | None, source: str
) -> str:
    """The Markdown document of `stack` from its stack outputs and an optional check report.

    `source` only names the outputs in a schema error; it never reaches the document.
    """
    exports = validate_exports(outputs, source)
    sections = [
        _overview(stack, exports),
        _running(stack, exports),
        _topology(exports),
        _ports(exports),
        _endpoints(stack, exports),
        _certificates(stack, exports),
        _volumes(exports),
        _backup(exports),
        _credentials(stack, exports),
        _compliance(stack, exports, compliance),
        _health_checks(stack, exports),
    ]
    return "\n\n".join(section.rstrip("\n") for section in sections) + "\n"


def _overview(stack: str, exports: Mapping[str, Any]) -> str:
    services, planned = exports["services"], exports["planned"]
    lines = [
        f"# Hospital data center — stack `{stack}`",
        "",
        "<!-- Generated by `python -m tools docs`; edit the program or the stack file, "
        "not this file. -->",
        "",
        f"Environment **{exports['environment']}**, domain `{exports['domain']}`: "
        f"{len(services)} containers in {len(exports['networks'])} trust zones, "
        f"{len(exports['volumes'])} volumes, {len(exports['ports'])} published ports. "
        f"Export schema version {exports['schemaVersion']}.",
        "",
    ]
    if planned:
        lines += [
            "> **Planned stack.** This document comes from a preview, not from a deployed "
            "stack. Names, addresses, ports, images and the backup plan are those the program "
            "will create; certificate fingerprints and expiry dates exist only after "
            "`pulumi up` and show as *issued at deploy*. Once it is deployed, regenerate it "
            "from the stack's outputs and the policy check report (without `--compliance` the "
            "Compliance section reads *not evaluated*):",
            ">",
            "> ```sh",
            *(f"> {command.format(stack=stack)}" for command in REGENERATE_COMMANDS),
            "> ```",
            "",
        ]
    lines += [
        "| Service | Container | Image | Trust zones | Memory | Root file system |",
        "|---|---|---|---|---|---|",
    ]
    for name, service in sorted(services.items()):
        memory = f"{service['memoryMb']} MiB" if "memoryMb" in service else "—"
        lines.append(
            _row(
                name,
                _code(service["container"]),
                _code(service["image"]),
                ", ".join(service["zones"]),
                memory,
                _root_file_system(service),
            )
        )
    carried = [s for s in services.values() if s.get("files")]
    if carried:
        lines += [
            "",
            "A read-only container cannot receive uploaded files, so each one's configuration, "
            "certificates and password files sit in a *file carrier*: a container of the same "
            "image that is created, filled and never started, whose volumes the service mounts "
            "read-only (`docker inspect` shows them under `Mounts`). A new carrier, when a file "
            "or the image changes, replaces its service.",
        ]
    lines += [
        "",
        "| Trust zone | Docker network | Subnet | Internal | Role |",
        "|---|---|---|---|---|",
    ]
    for zone, network in _zones(exports):
        lines.append(
            _row(
                zone,
                _code(network["name"]),
                network["subnet"],
                "yes" if network["internal"] else "no",
                ZONE_ROLES.get(zone, ""),
            )
        )
    return "\n".join(lines)


def _root_file_system(service: Mapping[str, Any]) -> str:
    """How a service's root file system is kept: read-only (files from which carrier, at
    which paths) or writable; a dash for exports from before the key existed."""
    if "readOnlyRoot" not in service:
        return "—"
    if not service["readOnlyRoot"]:
        return "writable (reviewed exception)"
    files = service.get("files")
    if not files:
        return "read-only"
    directories = ", ".join(_code(path) for path in files["directories"])
    return f"read-only; files from {_code(files['carrier'])} at {directories}"


def _running(stack: str, exports: Mapping[str, Any]) -> str:
    """What a new team member does, in order: deploy, read the passwords, set up the EDR."""
    pack_config = (exports.get("compliance") or {}).get(
        "packConfig", f"policies/config/{exports['environment']}.json"
    )
    lines = [
        "## Running the stack",
        "",
        "1. Deploy it. On a machine with this repository, the Pulumi CLI and a Docker engine:",
        "",
        "   ```sh",
        f"   make up STACK={stack}",
        "   ```",
        "",
        "   `make up` keeps the Pulumi state in `.pulumi-state/` inside the repository and runs "
        f"the policy pack with `{pack_config}`; every stack but `dev` needs "
        "`PULUMI_CONFIG_PASSPHRASE` (or `PULUMI_CONFIG_PASSPHRASE_FILE`) set first. On a real "
        "machine, with your own backend (`pulumi login`) and Docker host, install the policy "
        "pack's requirements once and run `pulumi up` with the pack:",
        "",
        "   ```sh",
        "   python3 -m venv policies/venv && policies/venv/bin/pip install -r "
        "policies/requirements.txt",
        f"   pulumi up --stack {stack} --policy-pack ./policies --policy-pack-config {pack_config}",
        "   ```",
        "",
        f"2. Read the generated passwords where the stack was deployed ({_passwords_hint()}):",
        "",
        "   ```sh",
        f"   {_credentials_command(stack)}",
        f"   {_credentials_command(stack, 'ACCOUNT')}",
        "   ```",
        "",
        "   The first prints every account's password, the second (with `jq`) one account's; "
        "the accounts "
        "are listed under *Credentials*. Keep the passwords out of tickets, chats and this "
        "document.",
    ]
    step = 3
    if "edr" in exports:
        lines += [
            "",
            f"{step}. Sign in to the EDR, switch on the hospital artifacts and enrol the "
            "endpoints: *EDR first steps* under *Endpoints*. Then date the EDR's own server "
            "certificate: *EDR server certificate* under *Certificates*.",
        ]
        step += 1
    lines += ["", f"{step}. Every day: the *Daily health checks* at the end of this document."]
    return "\n".join(lines)


def _passwords_hint() -> str:
    """Where the CLI finds a stack that `make up` deployed; the passphrase is never written."""
    return (
        f"after `make up`, in the repository: `export PULUMI_BACKEND_URL={LOCAL_STATE}`, with "
        "the passphrase `make up` used"
    )


def _credentials_command(stack: str, account: str | None = None) -> str:
    """The CLI call that shows the generated passwords: all of them, or one account's."""
    command = f"pulumi stack output --stack {stack} credentials --show-secrets"
    if account is None:
        return command
    return f"{command} --json | jq -r '.[\"{account}\"]'"


# ----- topology


def _topology(exports: Mapping[str, Any]) -> str:
    """A Mermaid flowchart: zones as subgraphs, containers, host addresses, data flows."""
    services, flows = exports["services"], exports["flows"]
    lines = [
        "## Topology",
        "",
        "Each container sits in the subgraph of its first trust zone; the others it joins are "
        "named in its box. Arrows are connections, from the party that opens them; published "
        "ports are the host address boxes.",
        "",
        "```mermaid",
        "flowchart LR",
    ]
    parties = sorted({flow[end] for flow in flows for end in ("source", "target")} - set(services))
    if parties:
        lines.append('    subgraph outside["Outside the host"]')
        lines += [
            f'        {_party_id(party)}(["{_label(_party_name(party))}"])' for party in parties
        ]
        lines.append("    end")

    lines.append(f'    subgraph host["Docker host ({_label(exports["domain"])})"]')
    published = _published(exports)
    for key, port in published.items():
        lines.append(f'        {_port_id(key)}[/"{port["address"]}:{port["hostPort"]}"/]')
    for zone, network in _zones(exports):
        internal = ", internal" if network["internal"] else ""
        lines.append(
            f'        subgraph {_zone_id(zone)}["{zone} zone · {_label(network["name"])} · '
            f'{network["subnet"]}{internal}"]'
        )
        for name, service in sorted(services.items()):
            if service["zones"][0] != zone:
                continue
            others = [z for z in service["zones"] if z != zone]
            also = f"<br/>also on: {', '.join(others)}" if others else ""
            lines.append(
                f'            {_service_id(name)}["<b>{_label(name)}</b><br/>'
                f'{_label(service["container"])}<br/>{_label(service["image"])}{also}"]'
            )
        lines.append("        end")
    lines.append("    end")

    for key, port in published.items():
        lines.append(
            f'    {_port_id(key)} -->|"{port["protocol"]}/{port["containerPort"]}"| '
            f"{_service_id(port['service'])}"
        )
    edges = []
    for flow in flows:
        source, target = _node_id(flow["source"], services), _node_id(flow["target"], services)
        label = _label(f"{flow['protocol']} {flow['port']}")
        key = (flow.get("address"), flow["port"])
        if flow["target"] in services and key in published:
            target = _port_id(key)
        arrow = "-.->" if flow["source"] not in services and flow["target"] in services else "-->"
        edges.append(f'    {source} {arrow}|"{label}"| {target}')
    # Flows that differ only in purpose (the EDR probing two sites) share one arrow.
    lines += list(dict.fromkeys(edges))
    lines.append("```")
    return "\n".join(lines)


def _zones(exports: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The trust zones from the outside in, whatever order the outputs file keeps keys in."""
    order = {zone: index for index, zone in enumerate(ZONE_ROLES)}
    networks = exports["networks"]
    return [
        (zone, networks[zone]) for zone in sorted(networks, key=lambda z: (order.get(z, 99), z))
    ]


def _published(exports: Mapping[str, Any]) -> dict[tuple[str, int], dict]:
    """Published ports by (host address, host port), in export order."""
    return {(port["address"], port["hostPort"]): port for port in exports["ports"]}


def _node_id(party: str, services: Mapping[str, Any]) -> str:
    return _service_id(party) if party in services else _party_id(party)


def _service_id(name: str) -> str:
    return "svc_" + _identifier(name)


def _party_id(name: str) -> str:
    return "ext_" + _identifier(name)


def _zone_id(zone: str) -> str:
    return "zone_" + _identifier(zone)


def _port_id(key: tuple[str, int]) -> str:
    return f"port_{_identifier(key[0])}_{key[1]}"


def _identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", text)


def _party_name(party: str) -> str:
    if party.startswith("modality:"):
        return f"Modality {party.removeprefix('modality:')}"
    return OUTSIDE_PARTIES.get(party, party)


def _label(text: str) -> str:
    """Text safe inside a quoted Mermaid label."""
    return str(text).replace("&", "&amp;").replace('"', "#quot;").replace("<", "&lt;")


# ----- tables


def _ports(exports: Mapping[str, Any]) -> str:
    services = exports["services"]
    lines = [
        "## Ports",
        "",
        "### Published on the host",
        "",
        "Only these ports are reachable from outside the Docker host.",
        "",
        "| Service | Container | Host address | Host port | Container port | Protocol | Purpose |",
        "|---|---|---|---|---|---|---|",
    ]
    for port in sorted(exports["ports"], key=lambda p: (p["address"], p["hostPort"])):
        lines.append(
            _row(
                port["service"],
                _code(port["container"]),
                port["address"],
                port["hostPort"],
                port["containerPort"],
                port["protocol"],
                port["purpose"],
            )
        )
    lines += [
        "",
        "### Connections",
        "",
        "Every connection the stack is built to carry, from the party that opens it. Anything "
        "else between the zones is not part of the design.",
        "",
        "| From | To | Port | Protocol | Zone / host address | Purpose |",
        "|---|---|---|---|---|---|",
    ]
    for flow in exports["flows"]:
        where = flow.get("address") or ""
        if flow.get("zone"):
            where = f"{flow['zone']}" + (f" · {where}" if where else "")
        lines.append(
            _row(
                _party(flow["source"], services),
                _party(flow["target"], services),
                flow["port"],
                flow["protocol"],
                where or "—",
                flow["purpose"],
            )
        )
    return "\n".join(lines)


def _party(party: str, services: Mapping[str, Any]) -> str:
    if party in services:
        return f"{party} ({_code(services[party]['container'])})"
    return _party_name(party)


def _endpoints(stack: str, exports: Mapping[str, Any]) -> str:
    lines = ["## Endpoints", "", "| Endpoint | Address |", "|---|---|"]
    lines += [_row(name, _code(url)) for name, url in sorted(exports["endpoints"].items())]
    if "dicom" in exports:
        lines += ["", "### DICOM", "", *_dicom(exports["dicom"])]
    if "edr" in exports:
        lines += ["", "### EDR", "", *_edr(exports["edr"])]
        lines += ["", "### EDR first steps", "", *_edr_first_steps(stack, exports["edr"])]
    return "\n".join(lines)


def _dicom(dicom: Mapping[str, Any]) -> list[str]:
    lines = [
        f"- AE title: {_code(dicom['aet'])}",
        f"- Address: `{dicom['host']}:{dicom['port']}`",
        f"- TLS: {_yes_no(dicom['tls'])}",
    ]
    modalities = dicom.get("modalities")
    if modalities:
        lines += [
            "",
            "| Modality | AE title | Host | Port | Allowed | TLS |",
            "|---|---|---|---|---|---|",
        ]
        for name, modality in sorted(modalities.items()):
            lines.append(
                _row(
                    name,
                    _code(modality["aet"]),
                    modality["host"],
                    modality["port"],
                    ", ".join(sorted(modality["allow"])),
                    _yes_no(modality["tls"]),
                )
            )
    return lines


def _edr(edr: Mapping[str, Any]) -> list[str]:
    lines = [
        f"- GUI (security team, management address only): {_code(edr['guiUrl'])}",
        f"- Agent frontend: {_code(edr['agentFrontendUrl'])}",
    ]
    for key, title in (
        ("clientEvents", "Client monitoring"),
        ("serverEvents", "Server monitoring"),
    ):
        if edr[key]:
            lines.append(f"- {title}: " + ", ".join(_code(name) for name in edr[key]))
    if edr["auditRules"]:
        lines += ["", "Host audit rules (`auditRules`, for auditd) on PHI volumes:", "", "```"]
        lines += edr["auditRules"]
        lines.append("```")
    return lines


def _edr_first_steps(stack: str, edr: Mapping[str, Any]) -> list[str]:
    """Sign in, switch the hospital artifacts on, enrol endpoints: once, after the first start."""
    where = ""
    if edr.get("guiAddress"):
        where = (
            f" (published on the management address {edr['guiAddress']} only; its host name "
            "must resolve to that address)"
        )
    steps = [
        [
            f"Sign in to the GUI at {_code(edr['guiUrl'])}{where} as user "
            f"{_code(edr['adminUser'])}, with the password of the "
            f"{_code(edr['adminPasswordAccount'])} credential:",
            "",
            "```sh",
            _credentials_command(stack, edr["adminPasswordAccount"]),
            "```",
            "",
            "The server takes that password only at its first start: after a credential "
            "rotation the GUI keeps the old one until you change it there.",
        ]
    ]
    steps += [[step] for step in edr.get("monitoringSetup", [])]
    enrolment = edr["enrolment"]
    enrol = ["Enrol an endpoint (on a Debian host, as an administrator):", "", "```sh"]
    enrol += [*enrolment["hostInstall"], "```"]
    if enrolment.get("note"):
        enrol += ["", enrolment["note"]]
    steps.append(enrol)
    lines = [
        "Once, after the first `pulumi up` (the server makes its configuration, CA and "
        "certificate at its first start):",
        "",
    ]
    for number, step in enumerate(steps, 1):
        lines.append(f"{number}. {step[0]}")
        lines += [f"   {line}" if line else "" for line in step[1:]]
        lines.append("")
    return lines[:-1]


def _edr_clients_command(edr: Mapping[str, Any]) -> str | None:
    """The server-side query listing enrolled clients, from the exported velociraptor call."""
    command = edr["enrolment"]["clientConfigCommand"]
    match = re.match(r"^(docker exec \S+ \S+ --config \S+) config client", command)
    if match is None:
        return None
    return (
        f"{match.group(1)} query "
        '"SELECT client_id, os_info.fqdn AS host, last_ip, '
        'timestamp(epoch=last_seen_at / 1000000) AS last_seen FROM clients()"'
    )


def _certificates(stack: str, exports: Mapping[str, Any]) -> str:
    pki, planned = exports["pki"], exports["planned"]
    ca = "the hospital's own CA" if pki["ownCa"] else "a CA generated for this stack"
    lines = [
        "## Certificates",
        "",
        f"Issued by {ca} (organisation {pki['organization']}, {pki['algorithm']} keys); "
        f"service certificates are valid {pki['certificateValidityDays']} days and renewed at "
        f"the first `pulumi up` within {pki['earlyRenewalDays']} days of expiry. Private keys "
        "never leave the stack's secrets.",
        "",
        "| Certificate | Subject | DNS names | SHA-256 fingerprint | Expires |",
        "|---|---|---|---|---|",
    ]
    certificates = exports["certificates"]
    for name in ["ca", *sorted(set(certificates) - {"ca"})]:
        certificate = certificates[name]
        known = not planned or (name == "ca" and pki["ownCa"])
        lines.append(
            _row(
                "CA" if name == "ca" else name,
                certificate["subject"],
                ", ".join(certificate["sans"]) or "—",
                _code(certificate["sha256"]) if known else "issued at deploy",
                certificate["notAfter"][:10] if known else "issued at deploy",
            )
        )
    if "edr" in exports:
        lines += ["", *_edr_server_certificate(stack, exports["edr"]["serverCertificate"])]
    return "\n".join(lines)


def _edr_server_certificate(stack: str, certificate: Mapping[str, Any]) -> list[str]:
    """The certificate Velociraptor makes itself: its dates are those recorded in the stack."""
    lines = [
        "### EDR server certificate",
        "",
        f"{_code(certificate['name'])}, the certificate the EDR frontend shows its agents, is "
        f"issued by {certificate['issuer']} at the server's first start, not by the stack's CA, "
        f"and is valid {certificate['validityDays']} days; an expired one stops every agent "
        f"from connecting. The {_code(certificate['watchedBy'])} artifact watches it from "
        "inside the server.",
        "",
    ]
    recorded = certificate["status"] == "recorded"
    if recorded:
        renew = (
            f"; renew it from {certificate['renewFrom']}" if certificate.get("renewFrom") else ""
        )
        lines += [
            f"- Issued: {certificate['issued']} (recorded in the stack file)",
            f"- Expires: {certificate['notAfter']}{renew}",
        ]
    else:
        lines += ["- Issued: **not recorded**", "- Expires: **not recorded**"]
    days = certificate["validityDays"]
    lines += [
        "",
        ("After reissuing it, read" if recorded else "Read")
        + " its dates on the Docker host and record its notBefore date (the issue date; "
        f"notAfter, {days} days later, is the expiry), so that `pulumi up` warns before it "
        "lapses:",
        "",
        "```sh",
        certificate["check"],
        f"pulumi config set --stack {stack} --path hospital:edr.certificateIssued YYYY-MM-DD",
        "```",
    ]
    return lines


def _volumes(exports: Mapping[str, Any]) -> str:
    volumes = exports["volumes"]
    lines = [
        "## Volumes and backup coverage",
        "",
        "| Volume | Service | Holds | Backed up |",
        "|---|---|---|---|",
    ]
    for volume in sorted(volumes, key=lambda v: v["name"]):
        lines.append(
            _row(
                _code(volume["name"]),
                volume["service"],
                DATA_CLASSES.get(volume["dataClass"], volume["dataClass"]),
                _coverage(volume),
            )
        )
    uncovered = [v["name"] for v in volumes if v["dataClass"] == "phi" and not v["backedUp"]]
    lines.append("")
    if uncovered:
        lines.append(
            f"**{len(uncovered)} volume(s) holding PHI are not backed up:** "
            + ", ".join(_code(name) for name in uncovered)
            + "."
        )
    else:
        phi = sum(1 for v in volumes if v["dataClass"] == "phi")
        lines.append(f"Every one of the {phi} volumes holding PHI is backed up.")
    return "\n".join(lines)


def _coverage(volume: Mapping[str, Any]) -> str:
    if volume["dataClass"] == "backup":
        return "destination"
    return "yes" if volume["backedUp"] else "**no**"


def _backup(exports: Mapping[str, Any]) -> str:
    lines = ["## Backup and restore", ""]
    if "backup" not in exports:
        lines.append(
            "This stack exports no backup plan: nothing on it is backed up by the program."
        )
        return "\n".join(lines)
    plan = exports["backup"]
    if not plan["enabled"]:
        lines.append(
            "Backups are **disabled** for this stack (`hospital:backup.enabled` is false): "
            "nothing on it is backed up and there is nothing to restore."
        )
        return "\n".join(lines)

    retention = plan["retention"]
    facts = [
        (f"Schedule (cron, {plan['timeZone']})", _code(plan["schedule"])),
        ("Recovery point objective", f"{plan['rpoHours']} hours"),
        (
            "Retention",
            f"newest backup of each of the last {retention['daily']} days and "
            f"{retention['weekly']} weeks",
        ),
        ("Destination", _code(plan["destination"])),
        ("Encrypted to (age recipients)", ", ".join(_code(r) for r in plan["recipients"])),
        ("Backup container", _code(plan["container"])),
    ]
    lines += [f"- {name}: {value}" for name, value in facts]
    covered = [v["name"] for v in exports["volumes"] if v["backedUp"]]
    lines += [
        "- Volumes in each backup: " + ", ".join(_code(name) for name in covered),
        "",
        "Restore (the age identity — the private key of a recipient above — is kept offline, "
        "never on this host):",
        "",
    ]
    lines += [f"{index}. {step}" for index, step in enumerate(plan["restoreSteps"], 1)]
    return "\n".join(lines)


def _credentials(stack: str, exports: Mapping[str, Any]) -> str:
    policy = exports["passwordPolicy"]
    accounts = exports["credentialAccounts"]
    return "\n".join(
        [
            "## Credentials",
            "",
            f"{len(accounts)} generated accounts, each password {policy['length']} characters "
            f"with at least one of each class ({', '.join(policy['characterClasses'])}); "
            f"they were last rotated on {policy['rotation']}{_rotation_due(exports)}. Rotating "
            "means changing `hospital:credentials.rotation` to today's date and running "
            "`pulumi up`. The passwords are stack secrets and appear in no document; read "
            f"them with `{_credentials_command(stack)}` ({_passwords_hint()}).",
            "",
            "Accounts: " + ", ".join(_code(account) for account in accounts) + ".",
        ]
    )


def _rotation_due(exports: Mapping[str, Any]) -> str:
    """`, next due by <date> (...)` from the compliance export; empty for an older stack."""
    rotation = (exports.get("compliance") or {}).get("passwordRotation")
    if not rotation:
        return ""
    return (
        f" and are due again by {rotation['expires']} ({rotation['maximumAgeDays']} days, "
        f"`randompassword-enforce-rotation`, {rotation['level']})"
    )


# ----- compliance


def _compliance(
    stack: str, exports: Mapping[str, Any], compliance: Mapping[str, Any] | None
) -> str:
    lines = ["## Compliance", ""]
    statuses: Mapping[str, str] = {}
    if compliance is None:
        lines += [
            "The policy check was **not evaluated** for this document. Run "
            f"`{CHECK_COMMAND.format(stack=stack)}` and pass `--compliance "
            f"{COMPLIANCE_FILE.format(stack=stack)}`.",
        ]
    else:
        statuses = compliance.get("attestations") or {}
        violations = compliance.get("violations", [])
        mandatory = sum(1 for v in violations if v.get("level") == "mandatory")
        lines += [
            f"Policy pack with `{compliance.get('packConfig', '?')}`: "
            f"{len(compliance.get('evaluated', []))} rules evaluated, "
            f"{len(compliance.get('disabled', []))} disabled; {len(violations)} violation(s), "
            f"{mandatory} mandatory. Attested items are organisational controls signed off in "
            "the stack file; they are never counted as enforced.",
            "",
            "| Checklist item | Rules | Attestations | Status |",
            "|---|---|---|---|",
        ]
        for row in compliance.get("checklist", []):
            rules = "<br>".join(f"`{rule}` ({state})" for rule, state in row["rules"]) or "—"
            attested = "<br>".join(f"{item} ({state})" for item, state in row["attestations"])
            note = f" — {row['note']}" if row.get("note") else ""
            lines.append(_row(row["item"], rules, attested or "—", row["status"] + note))
        if violations:
            lines += ["", "| Rule | Level | Resource | Finding |", "|---|---|---|---|"]
            for violation in sorted(
                violations, key=lambda v: (v.get("level") != "mandatory", v["policy"])
            ):
                lines.append(
                    _row(
                        _code(violation["policy"]),
                        violation.get("level", ""),
                        violation.get("resource", ""),
                        violation.get("message", ""),
                    )
                )
    lines += ["", "### Attestations", ""]
    attestations = exports["attestations"]
    if not attestations and not statuses:
        lines.append("No organisational control is attested in the stack file.")
        return "\n".join(lines)
    due = _attestations_due(exports)
    lines += [
        "| Item | Signed off by | Date | Evidence | Due again by | Status |",
        "|---|---|---|---|---|---|",
    ]
    listed = set()
    for entry in sorted(attestations, key=lambda a: (a["item"], a["date"])):
        listed.add(entry["item"])
        status = statuses.get(entry["item"], "not evaluated") if compliance else "not evaluated"
        expires = due.get((entry["item"], entry["date"]), "—")
        lines.append(
            _row(entry["item"], entry["by"], entry["date"], entry["evidence"], expires, status)
        )
    for item, status in sorted(statuses.items()):
        if item not in listed:
            lines.append(_row(item, "—", "—", "—", "—", status))
    return "\n".join(lines)


def _attestations_due(exports: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(item, date) -> the day that attestation expires under the stack's pack config."""
    section = (exports.get("compliance") or {}).get("attestations") or {}
    return {
        (entry["item"], entry["date"]): f"{entry['expires']} ({entry['maximumAgeDays']} days)"
        for entry in section.get("entries", [])
    }


# ----- operations


def _health_checks(stack: str, exports: Mapping[str, Any]) -> str:
    services = exports["services"]
    names = [services[name]["container"] for name in sorted(services)]
    logging = exports["logging"]
    containers = " ".join(names)
    lines = [
        "## Daily health checks",
        "",
        f"Run on the Docker host. The stack has {len(names)} containers; each must be "
        "`running` and `healthy`.",
        "",
        "1. Containers and their health:",
        "",
        "   ```sh",
        f"   docker ps --all --filter label=hospital.stack={stack} "
        "--format 'table {{.Names}}\\t{{.Status}}\\t{{.Image}}'",
        f"   for name in {containers}; do",
        "     printf '%-36s %s\\n' \"$name\" "
        '"$(docker inspect --format \'{{.State.Health.Status}}\' "$name")"',
        "   done",
        "   ```",
        "",
        "2. Errors in the last day's logs (Docker keeps each container's log with the "
        f"`{logging['driver']}` driver, at most {logging['maxFile']} files of "
        f"{logging['maxSize']}):",
        "",
        "   ```sh",
        f"   for name in {containers}; do",
        f'     echo "== $name"; docker logs --since 24h "$name" 2>&1 | '
        f"grep -iE '{LOG_PATTERN}' | tail -n 20",
        "   done",
        "   ```",
        "",
        "3. Disk space of the Docker data root and of the stack's volumes:",
        "",
        "   ```sh",
        "   df -h \"$(docker info --format '{{.DockerRootDir}}')\"",
        f"   docker system df -v | grep -E '^hospital-{stack}-'",
        "   ```",
        "",
        "4. Published ports are bound only to the addresses in the ports table:",
        "",
        "   ```sh",
        "   ss -Htln '( "
        + " or ".join(
            f"sport = :{port}" for port in sorted({p["hostPort"] for p in exports["ports"]})
        )
        + " )'",
        "   ```",
        "",
        "   Expected listeners: "
        + ", ".join(f"`{a}:{p}`" for a, p in sorted(_published(exports)))
        + ".",
    ]
    lines += ["", "5. EDR agents reporting in (every enrolled endpoint seen within the day):", ""]
    if "edr" not in exports:
        lines.append("   This stack exports no EDR service; there is no client list to check.")
    else:
        edr = exports["edr"]
        command = _edr_clients_command(edr)
        if command:
            lines += ["   ```sh", f"   {command}", "   ```", ""]
        lines += [
            f"   Or in the GUI at {_code(edr['guiUrl'])}: search clients for `all` and read "
            "the last-seen column.",
            "",
            "   The EDR server's own certificate (issued by Velociraptor, not by the stack's "
            "CA), its issue date (notBefore) and expiry (notAfter):",
            "",
            "   ```sh",
            f"   {edr['serverCertificate']['check']}",
            "   ```",
        ]
    backup = exports.get("backup")
    if backup is not None and backup["enabled"]:
        lines += [
            "",
            "6. Last night's backup ran (the backup container turns `unhealthy` when the newest "
            f"backup is older than the {backup['rpoHours']}-hour recovery point objective):",
            "",
            "   ```sh",
            f"   docker logs --since 26h {backup['container']} 2>&1 | tail -n 20",
            "   ```",
        ]
    return "\n".join(lines)


# ----- Markdown helpers


def _row(*cells: Any) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(value: Any) -> str:
    text = "—" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    return f"`{value}`"


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


# ----------------------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `docs` subcommand's options, on top of the shared stack options."""
    add_stack_arguments(parser)
    parser.add_argument(
        "--outputs",
        type=Path,
        help="document a deployed stack from this `pulumi stack output --json` file (with "
        "--compliance, else the Compliance section reads 'not evaluated')",
    )
    parser.add_argument(
        "--compliance",
        type=Path,
        help="with --outputs: the `python -m tools check --format json` report to include",
    )
    parser.add_argument("--out", type=Path, help="where to write (default docs/<stack>.md)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the file at --out differs from the generated document",
    )


def run(args: argparse.Namespace) -> int:
    """Write (or with --check compare) the document; 1 when stale, 2 when an input does not fit."""
    try:
        document = build(args)
    except (DocsInputError, ExportSchemaError) as error:
        print(f"docs: {error}", file=sys.stderr)
        return 2
    target = args.out or DOCS_DIR / f"{args.stack}.md"
    if args.check:
        if target.exists() and target.read_text() == document:
            print(f"docs: {target} is current")
            return 0
        print(f"docs: {target} is stale; run `make docs STACK={args.stack}`", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(document)
    print(f"docs: wrote {target} ({len(document.splitlines())} lines)")
    return 0


def build(args: argparse.Namespace) -> str:
    """The document the arguments ask for (raises DocsInputError, ExportSchemaError)."""
    if args.outputs is None:
        if args.compliance is not None:
            raise DocsInputError("--compliance goes with --outputs; a preview runs the check")
        return preview_document(
            args.stack,
            args.stack_file,
            project_dir=args.project_dir,
            secrets_file=args.secrets,
            seed=args.seed or PREVIEW_SEED,
        ).text

    outputs = read_json(args.outputs, "stack outputs file")
    compliance = None
    if args.compliance is not None:
        compliance = read_json(args.compliance, "policy check report")
        if not isinstance(compliance, Mapping) or "checklist" not in compliance:
            raise DocsInputError(
                f"{args.compliance} is not a `python -m tools check --format json` report"
            )
    return render(args.stack, outputs, compliance, str(args.outputs))


@dataclass(frozen=True)
class PreviewDocument:
    """A document made from the offline preview, with the inputs it was rendered from."""

    text: str
    recording: Recording
    outputs: dict[str, Any]
    compliance: dict[str, Any] | None


def preview_document(
    stack: str,
    stack_file: Path | None = None,
    *,
    project_dir: Path = REPO_ROOT,
    secrets_file: Path | None = None,
    seed: str = PREVIEW_SEED,
) -> PreviewDocument:
    """Run the program offline (fixed seed and clock) and render its document.

    Raises PreviewFailed when the program fails and ExportSchemaError when its exports do not
    match the schema.
    """
    recording = run_program(
        stack,
        stack_file,
        project_dir=project_dir,
        secrets_file=secrets_file,
        seed=seed,
        now=PREVIEW_CLOCK,
    )
    outputs = stack_outputs(recording)
    compliance = compliance_report(recording, stack)
    text = render(stack, outputs, compliance, f"offline preview of stack {stack!r}")
    return PreviewDocument(text, recording, outputs, compliance)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools docs", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))

"""Audit logging: the services that hold PHI record who did what, and nobody turns it off."""

import re

from pulumi_policy import Severity

from .framework import CONTAINER, resource_policy
from .inputs import command_line, environment, service, uploads_text
from .nginx import loopback_only, outside_servers, server_blocks

AUDIT = "164.312(b)"
ACTIVITY_REVIEW = "164.308(a)(1)(ii)(D)"

DATABASE_AUDIT_SETTING = re.compile(
    r"^\s*server[_-]audit[_-]logging\s*=\s*(on|1|true)\s*$", re.IGNORECASE | re.MULTILINE
)
DATABASE_AUDIT_FLAG = re.compile(r"^--server[_-]audit[_-]logging(=(on|1|true))?$", re.IGNORECASE)
ACCESS_LOG_OFF = re.compile(r"^\s*access_log\s+off\s*;", re.MULTILINE)
EMR_AUDIT_SWITCH = "OPENEMR_SETTING_enable_auditlog"
AUDITED_SERVICES = ("database", "gateway", "emr")


def access_log_off(config: str) -> bool:
    """True when access logging is off globally or in a server reachable off the host."""
    if ACCESS_LOG_OFF.search(outside_servers(config)):
        return True
    return any(
        ACCESS_LOG_OFF.search(block) and not loopback_only(block) for block in server_blocks(config)
    )


def audit_gaps(props) -> list[str]:
    """What keeps a service from auditing access, by service; empty when it audits."""
    name = service(props)
    if name == "database":
        configured = any(
            DATABASE_AUDIT_SETTING.search(text) for _, text in uploads_text(props, ".cnf")
        )
        flagged = any(DATABASE_AUDIT_FLAG.match(word) for word in command_line(props))
        if not (configured or flagged):
            return ["the MariaDB server_audit plugin is not logging (server_audit_logging=ON)"]
    if name == "gateway":
        configs = [text for _, text in uploads_text(props, ".conf")]
        if any(access_log_off(text) for text in configs):
            return ["nginx access logging is switched off"]
    if name == "emr" and environment(props).get(EMR_AUDIT_SWITCH, "1") in ("0", "false"):
        return [f"{EMR_AUDIT_SWITCH} turns the OpenEMR audit log off"]
    return []


def validate_audit_logging(args, report_violation):
    if service(args.props) not in AUDITED_SERVICES:
        args.not_applicable("a service without its own access audit log")
    for gap in audit_gaps(args.props):
        report_violation(f"Container '{args.name}': {gap}; enable it so access to PHI is recorded.")


POLICIES = [
    resource_policy(
        name="container-enable-audit-logging",
        description="The database, gateway and EMR keep their access audit logs switched on.",
        validate=validate_audit_logging,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[AUDIT, ACTIVITY_REVIEW],
        remediation="Load server_audit with `server_audit_logging=ON` in MariaDB, keep nginx "
        "`access_log` on and OpenEMR's enable_auditlog at 1.",
        reads_files=True,
    ),
]

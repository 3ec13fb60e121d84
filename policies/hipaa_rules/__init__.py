"""The HIPAA rules as plain pulumi_policy objects, importable without starting a policy pack.

`POLICIES` is every rule in report order; `CHECKLIST` maps each production checklist item to
the rules that enforce it and the attestations that stand in for what no resource can show.
"""

from dataclasses import dataclass

from . import (
    attestations,
    audit,
    backup,
    container_exposure,
    container_hardening,
    credentials,
    images,
    pki,
    services,
    topology,
)

POLICIES = [
    *services.POLICIES,
    *credentials.POLICIES,
    *container_exposure.POLICIES,
    *pki.POLICIES,
    *backup.POLICIES,
    *audit.POLICIES,
    *topology.POLICIES,
    *container_hardening.POLICIES,
    *images.POLICIES,
    *attestations.POLICIES,
]


@dataclass(frozen=True)
class ChecklistItem:
    """One line of the production checklist: the rules enforcing it, the attestations for it."""

    item: str
    rules: tuple[str, ...] = ()
    attestations: tuple[str, ...] = ()
    note: str = ""


CIS_CONTAINER_RULES = tuple(policy.name for policy in container_hardening.POLICIES)

CHECKLIST = (
    ChecklistItem(
        "Change all default passwords",
        ("container-disallow-default-credentials", "randompassword-configure-length"),
    ),
    ChecklistItem(
        "Passwords of 12+ characters with upper, lower, number and special",
        ("randompassword-configure-length", "randompassword-enforce-character-classes"),
    ),
    ChecklistItem("Rotate passwords every 90 days", ("randompassword-enforce-rotation",)),
    ChecklistItem(
        "Never reuse the last 5 passwords",
        note="an application feature of OpenEMR, Orthanc and Velociraptor accounts; no "
        "resource shows it",
    ),
    ChecklistItem(
        "Enable TLS/SSL on all services",
        (
            "container-enforce-tls-on-web-ports",
            "container-enforce-gateway-tls",
            "container-enforce-database-tls",
            "privatekey-enforce-key-strength",
            "certificate-configure-validity",
            "certificate-enforce-allowed-uses",
            "container-enforce-service-identity",
        ),
    ),
    ChecklistItem(
        "Configure firewall rules",
        (
            "container-disallow-unbound-ports",
            "container-disallow-unexpected-published-ports",
            "container-disallow-published-database",
            "container-disallow-privileged-host-ports",
            "container-disallow-default-bridge",
            "stack-disallow-edge-to-data-path",
            "stack-disallow-overlapping-zones",
            "container-enforce-service-identity",
        ),
    ),
    ChecklistItem(
        "Set up automated backups",
        ("stack-missing-backup-coverage", "container-configure-backup-schedule"),
    ),
    ChecklistItem("Encrypt backups", ("container-enable-backup-encryption",)),
    ChecklistItem("Test disaster recovery procedure", attestations=("restore-test",)),
    ChecklistItem("Configure log rotation", ("container-configure-log-rotation",)),
    ChecklistItem(
        "Enable audit logging",
        (
            "container-enable-audit-logging",
            "stack-missing-intrusion-detection",
            "container-enforce-service-identity",
        ),
    ),
    ChecklistItem(
        "Set up monitoring alerts",
        ("container-missing-healthcheck",),
        ("alert-routing",),
    ),
    ChecklistItem(
        "Document network topology",
        attestations=("topology-review",),
        note="generated from the stack by `python -m tools docs`",
    ),
    ChecklistItem("Train staff on systems", attestations=("staff-training",)),
    ChecklistItem("Perform security audit", attestations=("risk-assessment",)),
    ChecklistItem(
        "Third-party assessment (HHS recognises no HIPAA certification)",
        attestations=("third-party-assessment",),
    ),
    ChecklistItem(
        "Set up redundant systems (HA)",
        ("container-configure-restart-policy", "container-configure-memory-limit"),
        note="one Docker host: restarts recover a service, not the host",
    ),
    ChecklistItem(
        "Configure VPN for remote access",
        ("container-disallow-unbound-ports",),
        ("vpn",),
    ),
    ChecklistItem("Implement intrusion detection", ("stack-missing-intrusion-detection",)),
    ChecklistItem("Physical security of the server room", attestations=("physical-security",)),
    ChecklistItem("Harden container runtime (CIS Docker Benchmark)", CIS_CONTAINER_RULES),
    ChecklistItem("Pin images to a version or digest", ("image-disallow-floating-tag",)),
    ChecklistItem("Collect every organisational sign-off", ("stack-missing-attestations",)),
)

__all__ = ["CHECKLIST", "POLICIES", "ChecklistItem"]

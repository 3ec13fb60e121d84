"""Every rule passes its compliant fixtures, catches a mutated one with the expected message and
behaves as the engine does when a value it reads is unknown during preview."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from policy_harness import (
    AGE_RECIPIENT,
    COMPLIANT,
    CONTAINER,
    GATEWAY_CONF,
    PROD_ADDRESS,
    RULES,
    SECRET_MARKER,
    UNKNOWN,
    attestation,
    compliant_stack,
    days_ago,
    is_stack_rule,
    run_resource_rule,
    run_stack_rule,
    today,
)

Mutation = Callable[[dict[str, Any]], None]


def set_key(path: str, value: Any) -> Mutation:
    """Set the dotted `path` (list indexes as numbers) to `value`."""

    def mutate(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = props
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def drop(path: str) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = props
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        del target[last]

    return mutate


def add_env(line: str) -> Mutation:
    return lambda props: props.setdefault("envs", []).append(line)


def replace_env(name: str, line: str | None) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        kept = [entry for entry in props["envs"] if not entry.startswith(name + "=")]
        props["envs"] = kept + ([line] if line else [])

    return mutate


def compose(*mutations: Mutation) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(props)

    return mutate


def upload_text(old: str, new: str) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        for upload in props["uploads"]:
            upload["content"] = upload["content"].replace(old, new)

    return mutate


def add_volume(**volume: Any) -> Mutation:
    return lambda props: props.setdefault("volumes", []).append(volume)


def add_port(**port: Any) -> Mutation:
    return lambda props: props.setdefault("ports", []).append(port)


def add_bind_mount(source: str, target: str, propagation: str) -> Mutation:
    mount = {"type": "bind", "source": source, "target": target}
    mount["bindOptions"] = {"propagation": propagation}
    return lambda props: props.setdefault("mounts", []).append(mount)


def add_volume_mount(device: str, target: str) -> Mutation:
    """A volume mount whose driver options bind `device` from the host."""
    options = {"driverOptions": {"type": "none", "o": "bind", "device": device}}
    mount = {"type": "volume", "target": target, "volumeOptions": options}
    return lambda props: props.setdefault("mounts", []).append(mount)


# (rule, fixture kind, mutation, fragment the message must contain)
RESOURCE_MUTATIONS = [
    (
        "container-disallow-default-credentials",
        "emr",
        replace_env("OE_PASS", "OE_PASS=pass"),
        "OE_PASS is the image's published default",
    ),
    (
        "container-disallow-default-credentials",
        "emr",
        replace_env("OE_PASS", None),
        "OE_PASS is unset",
    ),
    (
        "container-disallow-default-credentials",
        "emr",
        replace_env("MYSQL_PASS", "MYSQL_PASS=openemr"),
        "MYSQL_PASS is the image's published default",
    ),
    (
        "container-disallow-default-credentials",
        "edr",
        replace_env(
            "VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD", "VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD=password"
        ),
        "VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD is the image's published default",
    ),
    (
        "container-disallow-default-credentials",
        "database",
        add_env("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1"),
        "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD allows",
    ),
    (
        "container-disallow-default-credentials",
        "database",
        set_key(
            "uploads.1",
            {
                "file": "/etc/orthanc/users.json",
                "content": '{"RegisteredUsers": {"orthanc": "orthanc"}}',
            },
        ),
        "registers the default Orthanc account",
    ),
    (
        "container-disallow-default-credentials",
        "edr",
        add_env('ORTHANC__REGISTERED_USERS={"orthanc": "orthanc"}'),
        "ORTHANC__REGISTERED_USERS registers the default Orthanc account",
    ),
    (
        "randompassword-configure-length",
        "password",
        set_key("length", 10.0),
        "is 10 characters long; set `length` to at least 12",
    ),
    (
        "randompassword-enforce-character-classes",
        "password",
        drop("minSpecial"),
        "does not guarantee a special character",
    ),
    (
        "randompassword-enforce-character-classes",
        "password",
        set_key("upper", False),
        "excludes upper characters",
    ),
    (
        "randompassword-enforce-rotation",
        "password",
        set_key("keepers.rotation", days_ago(91)),
        "last rotated 91 days ago",
    ),
    (
        "randompassword-enforce-rotation",
        "password",
        set_key("keepers", {}),
        "has no `keepers.rotation` ISO date",
    ),
    (
        "container-disallow-unbound-ports",
        "gateway",
        drop("ports.0.ip"),
        "publishes port 443 on every host interface",
    ),
    (
        "container-disallow-privileged-host-ports",
        "gateway",
        set_key("ports.0.external", 22.0),
        "publishes privileged host port 22",
    ),
    (
        "container-disallow-unexpected-published-ports",
        "emr",
        add_port(internal=80.0, external=8080.0, ip="10.40.0.10"),
        "is not an edge service",
    ),
    (
        "container-disallow-unexpected-published-ports",
        "gateway",
        set_key("publishAllPorts", True),
        "publishes every exposed port",
    ),
    (
        "container-disallow-published-database",
        "database",
        add_port(internal=3306.0, external=3306.0, ip="127.0.0.1"),
        "publishes ports on the host",
    ),
    (
        "container-enforce-tls-on-web-ports",
        "gateway",
        set_key("ports.0.internal", 80.0),
        "publishes plain HTTP (container port 80) on port 443 of the host",
    ),
    (
        "container-enforce-gateway-tls",
        "gateway",
        upload_text("TLSv1.2 TLSv1.3", "TLSv1 TLSv1.2"),
        "allows TLS versions below the minimum",
    ),
    (
        "container-enforce-gateway-tls",
        "gateway",
        upload_text("listen 8443 ssl", "listen 8443"),
        "does not terminate TLS",
    ),
    (
        "container-enforce-database-tls",
        "database",
        upload_text("require_secure_transport = ON", "require_secure_transport = OFF"),
        "accepts unencrypted clients",
    ),
    (
        "container-enforce-database-tls",
        "emr",
        replace_env("FORCE_DATABASE_SSL_CONNECT", None),
        "connects to the database without TLS",
    ),
    ("privatekey-enforce-key-strength", "key", set_key("ecdsaCurve", "P256"), "uses curve P256"),
    ("privatekey-enforce-key-strength", "key", lambda p: p.update(algorithm="RSA"), "is RSA-2048"),
    (
        "certificate-configure-validity",
        "leaf",
        set_key("validityPeriodHours", 20000.0),
        "is valid for 20000 hours",
    ),
    (
        "certificate-configure-validity",
        "leaf",
        drop("earlyRenewalHours"),
        "renews 0 hours before expiry",
    ),
    (
        "certificate-enforce-allowed-uses",
        "leaf",
        set_key("allowedUses", ["cert_signing", "server_auth"]),
        "may sign certificates",
    ),
    (
        "certificate-enforce-allowed-uses",
        "ca",
        set_key("allowedUses", ["crl_signing"]),
        "cannot sign certificates",
    ),
    (
        "container-enable-backup-encryption",
        "backup",
        replace_env("BACKUP_AGE_RECIPIENTS", None),
        "has no age recipient",
    ),
    (
        "container-enable-backup-encryption",
        "backup",
        replace_env("BACKUP_AGE_RECIPIENTS", "BACKUP_AGE_RECIPIENTS=none"),
        "has no age recipient",
    ),
    (
        "container-configure-backup-schedule",
        "backup",
        replace_env("BACKUP_SCHEDULE", "BACKUP_SCHEDULE=0 2 * * 0"),
        "can leave 168 hours between runs",
    ),
    (
        "container-configure-backup-schedule",
        "backup",
        replace_env("BACKUP_RPO_HOURS", None),
        "declares no recovery point objective",
    ),
    (
        "container-configure-backup-schedule",
        "backup",
        compose(
            replace_env("BACKUP_SCHEDULE", "BACKUP_SCHEDULE=0 2 1 * *"),
            replace_env("BACKUP_RPO_HOURS", "BACKUP_RPO_HOURS=nan"),
        ),
        "declares no recovery point objective",
    ),
    (
        "container-enable-audit-logging",
        "database",
        upload_text("server_audit_logging = ON", "server_audit_logging = OFF"),
        "server_audit plugin is not logging",
    ),
    (
        "container-enable-audit-logging",
        "gateway",
        upload_text("access_log /var/log/nginx/access.log;", "access_log off;"),
        "nginx access logging is switched off",
    ),
    ("container-disallow-privileged", "gateway", set_key("privileged", True), "runs privileged"),
    (
        "container-configure-cpu-limit",
        "gateway",
        drop("cpuShares"),
        "has neither a CPU weight nor a CPU cap",
    ),
    (
        "container-disallow-shared-mount-propagation",
        "backup",
        add_bind_mount("/srv/exchange", "/exchange", "rshared"),
        "binds /exchange with rshared mount propagation",
    ),
    (
        "container-enforce-capability-drop-all",
        "gateway",
        drop("capabilities.drops"),
        "keeps the default capability set",
    ),
    (
        "container-enforce-capability-drop-all",
        "database",
        set_key("capabilities.adds", ["SYS_ADMIN"]),
        "adds capability SYS_ADMIN",
    ),
    (
        "container-enable-no-new-privileges",
        "gateway",
        set_key("securityOpts", []),
        "lets processes gain privileges",
    ),
    (
        "container-disallow-unconfined-profiles",
        "gateway",
        set_key("securityOpts", ["no-new-privileges:true", "seccomp=unconfined"]),
        "disables a confinement profile (seccomp=unconfined)",
    ),
    (
        "container-disallow-docker-socket",
        "edr",
        add_volume(hostPath="/var/run/docker.sock", containerPath="/var/run/docker.sock"),
        "mounts the container runtime socket",
    ),
    (
        "container-disallow-sensitive-host-paths",
        "edr",
        add_volume(hostPath="/etc", containerPath="/host/etc"),
        "binds the sensitive host path /etc",
    ),
    ("container-disallow-host-namespaces", "edr", set_key("pidMode", "host"), "`pidMode=host`"),
    (
        "container-disallow-host-namespaces",
        "edr",
        set_key("networkMode", "container:4f1c2a"),
        "joins another container's namespace through `networkMode=container:...`",
    ),
    (
        "container-disallow-host-namespaces",
        "edr",
        set_key("ipcMode", "container:hospital-prod-emr"),
        "`ipcMode=container:...`",
    ),
    (
        "container-disallow-docker-socket",
        "edr",
        add_volume_mount("/var/run/docker.sock", "/var/run/docker.sock"),
        "mounts the container runtime socket",
    ),
    (
        "container-disallow-sensitive-host-paths",
        "edr",
        add_volume_mount("/etc", "/host/etc"),
        "binds the sensitive host path /etc",
    ),
    (
        "volume-disallow-sensitive-host-paths",
        "volume",
        set_key("driverOpts.device", "/var/run"),
        "binds the sensitive host path /var/run",
    ),
    (
        "volume-disallow-sensitive-host-paths",
        "volume",
        set_key("driverOpts.device", "/var/run/docker.sock"),
        "binds the container runtime socket",
    ),
    (
        "volume-disallow-sensitive-host-paths",
        "volume",
        lambda p: p["driverOpts"].update(o="rbind,ro", device="/"),
        "binds the sensitive host path /",
    ),
    (
        "container-enforce-service-identity",
        "database",
        drop("labels"),
        "has no `hospital.service` label and an image the pack does not recognise",
    ),
    (
        "container-enforce-service-identity",
        "database",
        set_key("labels.0.value", "databse"),
        "is labelled service 'databse', which no rule knows",
    ),
    ("container-configure-memory-limit", "gateway", drop("memory"), "has no memory limit"),
    ("container-configure-restart-policy", "gateway", drop("restart"), "has restart policy 'no'"),
    (
        "container-configure-restart-policy",
        "gateway",
        set_key("restart", "on-failure"),
        "restarts on failure without a bound",
    ),
    ("container-missing-healthcheck", "gateway", drop("healthcheck"), "has no health check"),
    (
        "container-configure-log-rotation",
        "gateway",
        lambda p: p.pop("logDriver") and p.pop("logOpts"),
        "writes json-file logs without rotation",
    ),
    (
        "container-configure-log-rotation",
        "gateway",
        lambda p: p.update(logDriver="json-file", logOpts={"max-size": "2g", "max-file": "3"}),
        "keeps more log than allowed",
    ),
    (
        "container-disallow-default-bridge",
        "gateway",
        set_key("networksAdvanced", []),
        "joins no user-defined network",
    ),
    (
        "container-disallow-default-bridge",
        "gateway",
        lambda p: p.update(networksAdvanced=[], networkMode="default"),
        "joins no user-defined network",
    ),
    (
        "container-enable-read-only-root",
        "backup",
        drop("readOnly"),
        "has a writable root filesystem",
    ),
    ("container-disallow-root-user", "gateway", set_key("user", "0:0"), "runs as root"),
    ("container-disallow-root-user", "backup", drop("user"), "runs as root"),
    (
        "image-disallow-floating-tag",
        "image",
        set_key("name", "mariadb:latest"),
        "(mariadb:latest) floats",
    ),
    (
        "image-disallow-floating-tag",
        "image",
        set_key("name", "ghcr.io/velocidex/velociraptor"),
        "floats",
    ),
]


def _container(stack, name):
    return next(props for kind, key, props in stack if key == name)


def _remove(name: str):
    return lambda stack: stack.remove(next(entry for entry in stack if entry[1] == name))


CARRIER_RULE = "container-enforce-read-only-file-carriers"


def _gateway_takes(entry: str):
    return lambda s: _container(s, "gateway")["volumes"].__setitem__(-1, {"fromContainer": entry})


# (rule, mutation of the compliant stack, fragment)
STACK_MUTATIONS = [
    (CARRIER_RULE, lambda s: _container(s, "gateway-files").pop("mustRun"), "has `mustRun` on"),
    (
        CARRIER_RULE,
        lambda s: _container(s, "gateway-files").update(networkMode="bridge"),
        "is attached to a network",
    ),
    (
        CARRIER_RULE,
        lambda s: _container(s, "gateway-files").update(
            ports=[{"internal": 8080.0, "external": 8080.0, "ip": PROD_ADDRESS}]
        ),
        "publishes ports",
    ),
    (
        CARRIER_RULE,
        lambda s: _container(s, "gateway-files").update(envs=["PASSWORD=x"]),
        "carries environment variables",
    ),
    (
        CARRIER_RULE,
        lambda s: _container(s, "gateway-files")["volumes"].append(
            {"volumeName": "hospital-prod-database-data", "containerPath": "/data"}
        ),
        "mounts a named volume",
    ),
    (
        CARRIER_RULE,
        lambda s: _container(s, "gateway-files")["uploads"].append(
            {"file": "/etc/nginx/nginx.conf", "content": "events {}"}
        ),
        "holds /etc/nginx/nginx.conf outside its volumes",
    ),
    (CARRIER_RULE, _gateway_takes("hospital-prod-gateway-files"), "writable; write"),
    (CARRIER_RULE, _gateway_takes("hospital-prod-gateway-files:rw"), "writable; write"),
    (CARRIER_RULE, _gateway_takes("hospital-prod-database:ro"), "which is no file carrier"),
    (
        CARRIER_RULE,
        lambda s: _container(s, "gateway-files")["labels"].__setitem__(
            0, {"label": "hospital.service", "value": "database"}
        ),
        "a carrier labelled for another service",
    ),
    # The rules that read files see the carrier's: a weak protocol there is the gateway's.
    (
        "container-enforce-gateway-tls",
        lambda s: _container(s, "gateway-files")["uploads"][0].update(
            content=GATEWAY_CONF.replace("TLSv1.2 TLSv1.3", "TLSv1 TLSv1.2 TLSv1.3")
        ),
        "allows TLS versions below the minimum",
    ),
    (
        "container-enforce-gateway-tls",
        lambda s: _container(s, "gateway")["volumes"].clear(),
        "does not terminate TLS",
    ),
    ("stack-missing-backup-coverage", _remove("backup"), "No backup job protects the 2"),
    (
        "stack-missing-backup-coverage",
        lambda s: _container(s, "backup")["volumes"].pop(1),
        "Volume 'hospital-prod-pacs-config'",
    ),
    (
        "stack-missing-backup-coverage",
        lambda s: _container(s, "backup")["volumes"][0].update(readOnly=False),
        "is mounted writable in the backup job",
    ),
    (
        "stack-disallow-edge-to-data-path",
        lambda s: _container(s, "gateway")["networksAdvanced"].append(
            {"name": "hospital-prod-data"}
        ),
        "joins both the edge and the data zone",
    ),
    (
        "stack-disallow-edge-to-data-path",
        lambda s: _container(s, "zones-data").update(internal=False),
        "routes off the host",
    ),
    (
        "stack-disallow-overlapping-zones",
        lambda s: _container(s, "zones-data").update(ipamConfigs=[{"subnet": "172.31.1.128/25"}]),
        "overlaps 'zones-clinical'",
    ),
    (
        "stack-disallow-overlapping-zones",
        lambda s: _container(s, "zones-edge").update(labels=[]),
        "carries no known `hospital.zone`",
    ),
    ("stack-missing-intrusion-detection", _remove("edr"), "runs no intrusion detection server"),
    (
        "stack-missing-intrusion-detection",
        lambda s: _container(s, "edr").update(
            networksAdvanced=[{"name": "hospital-prod-clinical"}]
        ),
        "is outside the security zone",
    ),
    (
        "stack-missing-attestations",
        lambda s: _container(s, "hospital-prod")["attestations"].pop(1),
        "No attestation for 'restore-test'",
    ),
    (
        "stack-missing-attestations",
        lambda s: (
            _container(s, "hospital-prod")["attestations"].append(attestation("vpn", 400))
            or _container(s, "hospital-prod")["attestations"].pop(4)
        ),
        "Attestation 'vpn' is expired (400 days)",
    ),
    (
        "stack-missing-attestations",
        lambda s: _container(s, "hospital-prod")["attestations"][0].update(evidence=""),
        "lacks a date, a signer or evidence",
    ),
]


def test_the_pack_has_at_least_25_rules_with_unique_names():
    names = list(RULES)

    assert len(names) >= 25, f"only {len(names)} rules"
    assert len(set(names)) == len(names), "two rules share a name"


@pytest.mark.parametrize("kind", sorted(COMPLIANT))
@pytest.mark.parametrize("rule", sorted(name for name in RULES if not is_stack_rule(name)))
def test_resource_rule_passes_compliant_fixture(rule, kind, compliant):
    resource_type, props = compliant(kind)

    outcome = run_resource_rule(rule, resource_type, props)

    assert outcome.unknown is None, f"{rule} crashed on unknowns in compliant {kind}"
    assert outcome.messages == [], f"{rule} flagged compliant {kind}: {outcome.messages}"


@pytest.mark.parametrize("rule", sorted(name for name in RULES if is_stack_rule(name)))
def test_stack_rule_passes_compliant_stack(rule, stack):
    outcome = run_stack_rule(rule, stack)

    assert outcome.unknown is None and outcome.messages == [], (
        f"{rule} flagged the compliant stack: {outcome.messages or outcome.unknown}"
    )


@pytest.mark.parametrize(
    ("rule", "kind", "mutation", "fragment"),
    RESOURCE_MUTATIONS,
    ids=[f"{rule}:{fragment[:30]}" for rule, _, _, fragment in RESOURCE_MUTATIONS],
)
def test_resource_rule_catches_mutated_fixture(rule, kind, mutation, fragment, compliant):
    resource_type, props = compliant(kind)
    mutation(props)

    outcome = run_resource_rule(rule, resource_type, props)

    assert any(fragment in message for message in outcome.messages), (
        f"{rule} missed the mutation (wanted {fragment!r}), said {outcome.messages}"
    )


@pytest.mark.parametrize(
    ("rule", "mutation", "fragment"),
    STACK_MUTATIONS,
    ids=[f"{rule}:{fragment[:30]}" for rule, _, fragment in STACK_MUTATIONS],
)
def test_stack_rule_catches_mutated_stack(rule, mutation, fragment, stack):
    mutation(stack)

    outcome = run_stack_rule(rule, stack)

    assert any(fragment in message for message in outcome.messages), (
        f"{rule} missed the mutation (wanted {fragment!r}), said {outcome.messages}"
    )


def test_every_message_ends_with_its_hipaa_citation(compliant):
    resource_type, props = compliant("gateway")
    props["privileged"] = True

    outcome = run_resource_rule("container-disallow-privileged", resource_type, props)

    assert outcome.messages[0].endswith("(HIPAA 164.312(a)(1), 164.312(c)(1); CIS Docker 5.5)"), (
        f"citation trailer missing: {outcome.messages[0]}"
    )


@pytest.mark.parametrize(
    ("rule", "kind", "mutation"),
    [(rule, kind, mutation) for rule, kind, mutation, _ in RESOURCE_MUTATIONS],
)
def test_no_message_reveals_a_secret_value(rule, kind, mutation, compliant):
    resource_type, props = compliant(kind)
    mutation(props)

    outcome = run_resource_rule(rule, resource_type, props)

    assert not any(SECRET_MARKER in message for message in outcome.messages), (
        f"{rule} printed a secret value: {outcome.messages}"
    )


def test_weak_password_values_are_named_never_printed(compliant):
    resource_type, props = compliant("emr")
    props["envs"].append("SMTP_PASSWORD=changeme")

    outcome = run_resource_rule("container-disallow-default-credentials", resource_type, props)

    assert outcome.messages and "SMTP_PASSWORD" in outcome.messages[0], outcome.messages
    assert "changeme" not in " ".join(outcome.messages), "the weak value itself was printed"


# Unknowns: (rule, kind, dotted path made unknown, "diagnostic" or "pass").
# "diagnostic": the rule reads the value itself and the engine reports it can't run yet;
# "pass": the value sits in a list the rule skips element by element, so known parts still count.
UNKNOWN_CASES = [
    ("container-disallow-privileged", "gateway", "privileged", "diagnostic"),
    ("container-disallow-shared-mount-propagation", "gateway", "mounts", "diagnostic"),
    ("container-configure-memory-limit", "gateway", "memory", "diagnostic"),
    ("container-configure-cpu-limit", "gateway", "cpuShares", "diagnostic"),
    ("container-configure-restart-policy", "gateway", "restart", "diagnostic"),
    ("container-disallow-unbound-ports", "gateway", "ports.0.ip", "diagnostic"),
    ("container-disallow-unbound-ports", "gateway", "ports.0", "pass"),
    ("container-disallow-default-credentials", "emr", "envs.2", "diagnostic"),
    ("container-disallow-default-credentials", "database", "envs.0", "pass"),
    ("container-disallow-default-credentials", "emr", "envs", "diagnostic"),
    ("container-enforce-database-tls", "database", "uploads.0.content", "diagnostic"),
    ("container-enforce-database-tls", "database", "uploads.1.content", "pass"),
    ("container-enable-audit-logging", "database", "uploads.1.content", "pass"),
    ("container-enable-no-new-privileges", "gateway", "securityOpts.0", "diagnostic"),
    ("container-enforce-capability-drop-all", "gateway", "capabilities", "diagnostic"),
    ("container-disallow-default-bridge", "gateway", "networksAdvanced.0", "pass"),
    ("randompassword-configure-length", "password", "length", "diagnostic"),
    ("randompassword-enforce-rotation", "password", "keepers.rotation", "diagnostic"),
    ("privatekey-enforce-key-strength", "key", "ecdsaCurve", "diagnostic"),
    ("certificate-configure-validity", "leaf", "validityPeriodHours", "diagnostic"),
    ("image-disallow-floating-tag", "image", "name", "diagnostic"),
    ("container-configure-backup-schedule", "backup", "envs.2", "diagnostic"),
    ("container-disallow-unconfined-profiles", "gateway", "securityOpts.0", "pass"),
    ("container-disallow-sensitive-host-paths", "database", "volumes.0", "pass"),
    ("container-enable-read-only-root", "gateway", "image", "pass"),
    ("certificate-enforce-allowed-uses", "leaf", "allowedUses.0", "diagnostic"),
    ("certificate-enforce-allowed-uses", "leaf", "allowedUses.1", "pass"),
    ("certificate-enforce-allowed-uses", "ca", "isCaCertificate", "diagnostic"),
    ("container-configure-log-rotation", "gateway", "logDriver", "diagnostic"),
    ("container-configure-log-rotation", "gateway", "logOpts.max-size", "diagnostic"),
    ("container-disallow-docker-socket", "database", "volumes.0", "pass"),
    ("container-disallow-docker-socket", "database", "volumes.0.hostPath", "diagnostic"),
    ("container-disallow-host-namespaces", "edr", "pidMode", "diagnostic"),
    ("container-disallow-privileged-host-ports", "gateway", "ports.0.external", "diagnostic"),
    ("container-disallow-privileged-host-ports", "gateway", "ports.0", "pass"),
    ("container-disallow-published-database", "database", "labels.0", "diagnostic"),
    ("container-disallow-published-database", "database", "ports", "diagnostic"),
    ("container-disallow-root-user", "gateway", "user", "diagnostic"),
    ("container-disallow-root-user", "database", "labels.0", "diagnostic"),
    ("container-disallow-unexpected-published-ports", "edr", "labels.0", "diagnostic"),
    ("container-disallow-unexpected-published-ports", "gateway", "publishAllPorts", "diagnostic"),
    ("container-disallow-unexpected-published-ports", "emr", "labels.0", "pass"),
    ("container-enable-backup-encryption", "backup", "envs.2", "diagnostic"),
    ("container-enable-backup-encryption", "backup", "labels.0", "diagnostic"),
    ("container-enforce-gateway-tls", "gateway", "uploads.0.content", "diagnostic"),
    ("container-enforce-tls-on-web-ports", "gateway", "ports.1.internal", "diagnostic"),
    ("container-enforce-tls-on-web-ports", "gateway", "ports.1", "pass"),
    ("container-missing-healthcheck", "gateway", "healthcheck.tests.0", "diagnostic"),
    ("container-missing-healthcheck", "gateway", "healthcheck", "diagnostic"),
    ("randompassword-enforce-character-classes", "password", "minSpecial", "diagnostic"),
    ("randompassword-enforce-character-classes", "password", "upper", "diagnostic"),
    ("volume-disallow-sensitive-host-paths", "volume", "driverOpts.device", "diagnostic"),
    ("volume-disallow-sensitive-host-paths", "volume", "driver", "diagnostic"),
    ("container-enforce-service-identity", "database", "labels.0", "diagnostic"),
    ("container-enforce-service-identity", "database", "labels.1", "pass"),
]


@pytest.mark.parametrize(("rule", "kind", "path", "expected"), UNKNOWN_CASES)
def test_unknown_value_behaves_as_the_engine(rule, kind, path, expected, compliant):
    resource_type, props = compliant(kind)
    set_key(path, UNKNOWN)(props)

    outcome = run_resource_rule(rule, resource_type, props)

    assert outcome.messages == [], f"{rule} reported a violation on unknown {path}: {outcome}"
    if expected == "diagnostic":
        assert outcome.unknown and "can't be known during preview" in outcome.unknown, (
            f"{rule} read unknown {path} without the engine's diagnostic: {outcome}"
        )
    else:
        assert outcome.unknown is None, f"{rule} should judge the known parts: {outcome}"


# Stack unknowns: (rule, resource name, dotted path in its outputs made unknown, expected).
STACK_UNKNOWN_CASES = [
    (CARRIER_RULE, "gateway", "volumes.0.fromContainer", "pass"),
    (CARRIER_RULE, "gateway-files", "mustRun", "diagnostic"),
    # Files not known yet (the carrier's, or which carrier) leave the gateway's TLS unjudged.
    ("container-enforce-gateway-tls", "gateway-files", "uploads", "diagnostic"),
    ("container-enforce-gateway-tls", "gateway", "volumes", "diagnostic"),
    ("stack-disallow-edge-to-data-path", "gateway", "networksAdvanced.0.name", "pass"),
    ("stack-disallow-edge-to-data-path", "zones-data", "internal", "diagnostic"),
    ("stack-disallow-overlapping-zones", "zones-edge", "labels.0", "diagnostic"),
    ("stack-disallow-overlapping-zones", "zones-edge", "ipamConfigs.0", "pass"),
    ("stack-missing-intrusion-detection", "edr", "labels.0", "diagnostic"),
    ("stack-missing-intrusion-detection", "edr", "networksAdvanced.0.name", "diagnostic"),
    ("stack-missing-backup-coverage", "backup", "volumes.1", "diagnostic"),
    ("stack-missing-backup-coverage", "pacs-config", "labels.1", "diagnostic"),
    ("stack-missing-attestations", "hospital-prod", "attestations.1", "diagnostic"),
    ("stack-missing-attestations", "hospital-prod", "attestations.0.date", "diagnostic"),
]


@pytest.mark.parametrize(("rule", "name", "path", "expected"), STACK_UNKNOWN_CASES)
def test_stack_unknown_value_behaves_as_the_engine(rule, name, path, expected, stack):
    set_key(path, UNKNOWN)(_container(stack, name))

    outcome = run_stack_rule(rule, stack)

    assert outcome.messages == [], f"{rule} reported a violation on unknown {path}: {outcome}"
    if expected == "diagnostic":
        assert outcome.unknown and "can't be known during preview" in outcome.unknown, (
            f"{rule} read unknown {name}.{path} without the engine's diagnostic: {outcome}"
        )
    else:
        assert outcome.unknown is None, f"{rule} should judge the known parts: {outcome}"


def applies_to_a_compliant_fixture(rule: str, compliant) -> bool:
    """True when some compliant fixture is a subject the rule judges (not skipped by type or
    `not_applicable`), so passing it shows something."""
    if is_stack_rule(rule):
        return run_stack_rule(rule, compliant_stack()).not_applicable is None
    for kind in COMPLIANT:
        resource_type, props = compliant(kind)
        if resource_type not in RULES[rule].resource_types:
            continue
        if run_resource_rule(rule, resource_type, props).not_applicable is None:
            return True
    return False


# A new rule cannot join the pack without a compliant subject, a mutation and an unknown case.
def test_every_rule_has_compliant_mutated_and_unknown_fixtures(compliant):
    mutated = {rule for rule, *_ in RESOURCE_MUTATIONS} | {rule for rule, *_ in STACK_MUTATIONS}
    unknown = {rule for rule, *_ in UNKNOWN_CASES} | {rule for rule, *_ in STACK_UNKNOWN_CASES}

    lacking = {
        rule: [
            kind
            for kind, present in (
                ("compliant", applies_to_a_compliant_fixture(rule, compliant)),
                ("mutated", rule in mutated),
                ("unknown", rule in unknown),
            )
            if not present
        ]
        for rule in RULES
    }
    missing = {rule: kinds for rule, kinds in lacking.items() if kinds}

    assert not missing, f"rules lacking fixture kinds: {missing}"


def test_attestations_fall_back_to_pack_config():
    stack = [entry for entry in compliant_stack() if entry[0] != "pulumi:pulumi:Stack"]
    fallback = [attestation(item) for item in ("staff-training", "restore-test")]

    outcome = run_stack_rule(
        "stack-missing-attestations",
        stack,
        {"attestations": fallback, "requiredItems": ["staff-training", "restore-test", "vpn"]},
    )

    assert outcome.messages and all("'vpn'" in message for message in outcome.messages), outcome


def test_attestation_dated_in_the_future_is_refused(stack):
    entries = _container(stack, "hospital-prod")["attestations"]
    entries[0]["date"] = "2999-01-01"

    outcome = run_stack_rule("stack-missing-attestations", stack)

    assert any("future-dated" in message for message in outcome.messages), outcome


def test_config_thresholds_change_the_verdict(compliant):
    resource_type, props = compliant("password")
    props["length"] = 14.0

    lenient = run_resource_rule("randompassword-configure-length", resource_type, props)
    strict = run_resource_rule(
        "randompassword-configure-length", resource_type, props, {"minimumLength": 16}
    )

    assert lenient.messages == [], "14 characters meet the default minimum of 12"
    assert strict.messages, "14 characters must fail a configured minimum of 16"


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        ("0 2 * * *", 24),
        ("0 */6 * * *", 6),
        ("30 1 * * 1-5", 72),
        ("@hourly", 1),
        ("0 0 1 * *", 744),
    ],
)
def test_backup_schedule_gap_is_the_longest_interval(schedule, gap):
    from policies.hipaa_rules.backup import longest_gap_hours

    assert longest_gap_hours(schedule) == gap, f"{schedule} leaves {gap} h at most"


# The provider's default network mode is the bridge, which it leaves for the listed networks:
# a zone container that keeps that default is compliant; one that lists none is not.
def test_default_bridge_mode_passes_only_with_zone_networks(compliant):
    resource_type, props = compliant("gateway")
    props["networkMode"] = "bridge"

    zoned = run_resource_rule("container-disallow-default-bridge", resource_type, props)
    props["networksAdvanced"] = []
    bridged = run_resource_rule("container-disallow-default-bridge", resource_type, props)

    assert zoned.messages == [], f"bridge mode with zone networks was flagged: {zoned.messages}"
    assert bridged.messages, "a container on the default bridge only was not flagged"


def test_loopback_http_is_tolerated_only_when_configured(compliant):
    resource_type, props = compliant("emr")
    props["ports"] = [{"internal": 80.0, "external": 8080.0, "ip": "127.0.0.1"}]

    strict = run_resource_rule("container-enforce-tls-on-web-ports", resource_type, props)
    lab = run_resource_rule(
        "container-enforce-tls-on-web-ports", resource_type, props, {"allowLoopbackHttp": True}
    )

    assert strict.messages, "plain HTTP on loopback must fail when not tolerated"
    assert lab.messages == [], f"dev tolerates loopback HTTP: {lab.messages}"


def test_rotation_date_today_passes(compliant):
    resource_type, props = compliant("password")
    props["keepers"]["rotation"] = today()

    assert run_resource_rule("randompassword-enforce-rotation", resource_type, props).messages == []


def test_age_recipient_file_counts_as_encryption(compliant):
    resource_type, props = compliant("backup")
    props["envs"] = [e for e in props["envs"] if not e.startswith("BACKUP_AGE_RECIPIENTS=")]
    props["uploads"] = [{"file": "/etc/backup/recipients.txt", "content": AGE_RECIPIENT}]

    outcome = run_resource_rule("container-enable-backup-encryption", resource_type, props)

    assert outcome.messages == [], outcome.messages


def test_reviewed_capability_exception_applies_to_its_service_only(compliant):
    exception = {"serviceCapabilities": {"database": ["DAC_READ_SEARCH"]}}
    _, database = compliant("database")
    _, emr = compliant("emr")
    database["capabilities"]["adds"].append("DAC_READ_SEARCH")
    emr["capabilities"] = {"drops": ["ALL"], "adds": ["DAC_READ_SEARCH"]}

    allowed = run_resource_rule(
        "container-enforce-capability-drop-all", CONTAINER, database, exception
    )
    refused = run_resource_rule("container-enforce-capability-drop-all", CONTAINER, emr, exception)

    assert allowed.messages == [], f"the database exception was ignored: {allowed.messages}"
    assert refused.messages, "the database's exception leaked to the EMR"


def test_the_backup_archive_volume_is_not_a_backup_source(stack):
    archive = {
        "name": "hospital-prod-backup-archive",
        "labels": [
            {"label": "hospital.service", "value": "backup"},
            {"label": "hospital.data-class", "value": "phi"},
        ],
    }
    stack.append(("docker:index/volume:Volume", "backup-archive", archive))

    outcome = run_stack_rule("stack-missing-backup-coverage", stack)

    assert outcome.messages == [], f"the archive volume was judged a source: {outcome.messages}"


# Without its label a container is still recognised by an image reference that names it.
@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("mariadb:11.4.8", "database"),
        ("docker.io/library/mariadb:11.4.8@sha256:" + "a" * 64, "database"),
        ("openemr/openemr:8.0.0", "emr"),
        ("orthancteam/orthanc:25.10.3", "pacs"),
        ("nginx:1.28.0", "gateway"),
        ("ghcr.io/velocidex/velociraptor-server:0.77.3", "edr"),
        ("hospital-backup:92a7b9e8f9f8", "backup"),
        ("registry.example:5000/nginx-proxy-manager:2.12", None),
        ("sha256:" + "0" * 64, None),
    ],
)
def test_image_reference_identifies_its_service(reference, expected):
    from policies.hipaa_rules.inputs import image_service

    assert image_service(reference) == expected, f"{reference} is the {expected} image"


# Removing the label from a container whose image names MariaDB keeps the database TLS rule on it.
def test_unlabelled_database_is_judged_by_its_image(compliant):
    resource_type, props = compliant("database")
    props["labels"] = []
    props["image"] = "mariadb:11.4.8"
    upload_text("require_secure_transport = ON", "require_secure_transport = OFF")(props)

    outcome = run_resource_rule("container-enforce-database-tls", resource_type, props)

    assert any("accepts unencrypted clients" in m for m in outcome.messages), (
        f"the unlabelled MariaDB container escaped the TLS rule: {outcome}"
    )


# An unknown label entry leaves the service open, so a publishing rule waits instead of judging
# an "unknown service".
def test_unknown_label_entry_waits_instead_of_flagging_an_unknown_service(compliant):
    resource_type, props = compliant("edr")
    props["labels"] = [UNKNOWN]

    outcome = run_resource_rule(
        "container-disallow-unexpected-published-ports", resource_type, props
    )

    assert outcome.messages == [] and outcome.unknown, f"judged an unknown service: {outcome}"


# Stack rules resolve a container's image id through the image resources of the stack.
def test_unlabelled_backup_job_is_found_through_its_image_id(stack):
    job = _container(stack, "backup")
    job["labels"] = []
    job["image"] = "sha256:" + "b" * 64
    stack.append(
        (
            "docker:index/remoteImage:RemoteImage",
            "backup-image",
            {"name": "hospital-backup:92a7b9e8f9f8", "imageId": job["image"]},
        )
    )

    found = run_stack_rule("stack-missing-backup-coverage", stack)
    stack.pop()
    lost = run_stack_rule("stack-missing-backup-coverage", stack)

    assert found.messages == [], f"the unlabelled job was not recognised by its image: {found}"
    assert any("No backup job" in m for m in lost.messages), f"an unknown image counted: {lost}"


# A ports entry not known yet still publishes a port, so the database is flagged all the same.
def test_database_with_an_unknown_port_entry_is_still_published(compliant):
    resource_type, props = compliant("database")
    props["ports"] = [UNKNOWN]

    outcome = run_resource_rule("container-disallow-published-database", resource_type, props)

    assert any("publishes ports on the host" in m for m in outcome.messages), outcome


# Without `external` Docker picks an ephemeral host port: published, but never a privileged one.
def test_port_without_external_is_published_on_an_ephemeral_port(compliant):
    resource_type, gateway = compliant("gateway")
    del gateway["ports"][1]["external"]
    _, emr = compliant("emr")
    emr["ports"] = [{"internal": 443.0, "ip": "0.0.0.0"}]

    privileged = run_resource_rule(
        "container-disallow-privileged-host-ports", resource_type, gateway
    )
    unexpected = run_resource_rule("container-disallow-unexpected-published-ports", CONTAINER, emr)
    unbound = run_resource_rule("container-disallow-unbound-ports", CONTAINER, emr)

    assert privileged.messages == [], f"an ephemeral port was judged privileged: {privileged}"
    assert any("publishes 1 port(s)" in m for m in unexpected.messages), unexpected
    assert any("publishes an ephemeral port on every host" in m for m in unbound.messages), unbound


# A future-dated entry is refused without hiding the current entry for the same item.
def test_future_dated_entry_does_not_hide_a_current_one(stack):
    from policies.hipaa_rules.attestations import assess

    entries = _container(stack, "hospital-prod")["attestations"]
    entries.append({**attestation("restore-test"), "date": "2999-01-01"})

    outcome = run_stack_rule("stack-missing-attestations", stack)
    status = assess(entries, 365, {"restore-test": 180}, datetime.now(UTC).date())

    assert status["restore-test"] == "attested", f"the current restore test was hidden: {status}"
    assert len(outcome.messages) == 1 and "'restore-test' is future-dated" in outcome.messages[0], (
        f"the future-dated entry alone should be reported: {outcome.messages}"
    )


# Docker-managed volumes and plugin volumes bind no host path; only local bind devices are judged.
@pytest.mark.parametrize(
    "driver_options",
    [
        {},
        {"type": "tmpfs", "device": "tmpfs", "o": "size=100m"},
        {"type": "nfs", "o": "addr=10.40.2.5,rw", "device": ":/exports/backups"},
    ],
)
def test_volume_without_a_bind_device_passes(driver_options, compliant):
    resource_type, props = compliant("volume")
    props["driverOpts"] = driver_options

    outcome = run_resource_rule("volume-disallow-sensitive-host-paths", resource_type, props)

    assert outcome.messages == [] and outcome.unknown is None, outcome


# A writable root is never skipped silently: uploads are no excuse (a file carrier holds them),
# so a writable root is flagged unless its service is a reviewed exception.
def test_writable_root_needs_a_reviewed_exception(compliant):
    resource_type, props = compliant("database")
    props["readOnly"] = False
    rule = "container-enable-read-only-root"

    flagged = run_resource_rule(rule, resource_type, props)
    excepted = run_resource_rule(rule, resource_type, props, {"writableRootServices": ["database"]})

    assert flagged.messages and "take uploaded files from a file carrier" in flagged.messages[0]
    assert excepted.messages == [] and "reviewed exception" in str(excepted.not_applicable), (
        excepted
    )


# A file carrier is never judged as a running service (health, limits, restarts, user) ...
def test_running_service_rules_leave_file_carriers_out(stack):
    carrier = _container(stack, "gateway-files")

    outcome = run_resource_rule("container-missing-healthcheck", CONTAINER, carrier)

    assert outcome.messages == [] and "file carrier" in str(outcome.not_applicable), outcome


# ... and its files count for the service that mounts them, not for a service of their own.
def test_a_carrier_is_not_a_second_gateway(stack):
    outcome = run_stack_rule("container-enforce-gateway-tls", stack)

    assert outcome.messages == [] and outcome.not_applicable is None, outcome


# A CPU weight suffices by default; a pack config asking for a hard cap wants `cpus` (or a quota).
def test_cpu_weight_suffices_unless_a_hard_cap_is_required(compliant):
    resource_type, props = compliant("database")
    rule = "container-configure-cpu-limit"

    weighted = run_resource_rule(rule, resource_type, props)
    strict = run_resource_rule(rule, resource_type, props, {"requireHardLimit": True})
    props["cpus"] = "1.5"
    capped = run_resource_rule(rule, resource_type, props, {"requireHardLimit": True})

    assert weighted.messages == [], weighted
    assert strict.messages and "has no CPU cap" in strict.messages[0], strict
    assert capped.messages == [], capped


# Private propagation (Docker's default) and a mount without bind options are compliant.
@pytest.mark.parametrize("propagation", ["rprivate", "private", "rslave"])
def test_private_or_slave_mount_propagation_passes(propagation, compliant):
    resource_type, props = compliant("backup")
    add_bind_mount("/srv/exchange", "/exchange", propagation)(props)
    props["mounts"].append({"type": "volume", "target": "/data", "source": "data"})

    outcome = run_resource_rule("container-disallow-shared-mount-propagation", resource_type, props)

    assert outcome.messages == [] and outcome.unknown is None, outcome


# A volume plugin's options are the plugin's, not a host path.
def test_plugin_volume_options_are_not_host_paths(compliant):
    resource_type, props = compliant("volume")
    props.update(driver="rexray/ebs", driverOpts={"o": "bind", "device": "/etc"})

    outcome = run_resource_rule("volume-disallow-sensitive-host-paths", resource_type, props)

    assert outcome.messages == [], f"a plugin volume was judged as a bind: {outcome.messages}"


# A rule that reads files runs stack-wide, yet keeps the engine's per-resource semantics: a
# container whose files are not known yet waits, and another container's violation is still
# reported beside that diagnostic.
def test_files_unknown_in_one_container_do_not_hide_anothers_violation(stack):
    set_key("uploads", UNKNOWN)(_container(stack, "gateway-files"))
    database = _container(stack, "database")
    database["uploads"][0]["content"] = database["uploads"][0]["content"].replace(
        "require_secure_transport = ON", "require_secure_transport = OFF"
    )

    outcome = run_stack_rule("container-enforce-database-tls", stack)

    assert outcome.unknown and "can't be known during preview" in outcome.unknown, outcome
    assert [m for m in outcome.messages if "accepts unencrypted clients" in m], outcome

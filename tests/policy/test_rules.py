"""Every rule passes its compliant fixtures, catches a mutated one with the expected message and
behaves as the engine does when a value it reads is unknown during preview."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from policy_harness import (
    AGE_RECIPIENT,
    COMPLIANT,
    CONTAINER,
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


def upload_text(old: str, new: str) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        for upload in props["uploads"]:
            upload["content"] = upload["content"].replace(old, new)

    return mutate


def add_volume(**volume: Any) -> Mutation:
    return lambda props: props.setdefault("volumes", []).append(volume)


def add_port(**port: Any) -> Mutation:
    return lambda props: props.setdefault("ports", []).append(port)


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
        "publishes plain HTTP (container port 80) on host port 443",
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
        "has no encryption recipient",
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
    ("container-enable-read-only-root", "backup", drop("readOnly"), "root filesystem is writable"),
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


# (rule, mutation of the compliant stack, fragment)
STACK_MUTATIONS = [
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


def test_every_rule_has_a_mutation_that_it_catches():
    covered = {rule for rule, *_ in RESOURCE_MUTATIONS} | {rule for rule, *_ in STACK_MUTATIONS}

    assert set(RULES) <= covered, f"rules without a mutated fixture: {set(RULES) - covered}"


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
    ("container-configure-memory-limit", "gateway", "memory", "diagnostic"),
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
]


@pytest.mark.parametrize(("rule", "kind", "path", "expected"), UNKNOWN_CASES)
def test_unknown_value_behaves_as_the_engine(rule, kind, path, expected, compliant):
    resource_type, props = compliant(kind)
    set_key(path, UNKNOWN)(props)

    outcome = run_resource_rule(rule, resource_type, props)

    if expected == "diagnostic":
        assert outcome.unknown and "can't be known during preview" in outcome.unknown, (
            f"{rule} read unknown {path} without the engine's diagnostic: {outcome}"
        )
    else:
        assert outcome.unknown is None and outcome.messages == [], (
            f"{rule} should judge the known parts and pass with unknown {path}: {outcome}"
        )


def test_stack_rule_waits_for_unknown_network_names(stack):
    _container(stack, "gateway")["networksAdvanced"][0]["name"] = UNKNOWN

    outcome = run_stack_rule("stack-disallow-edge-to-data-path", stack)

    assert outcome.unknown is None and outcome.messages == [], outcome


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

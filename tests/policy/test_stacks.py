"""The committed stacks under the policy gate: prod passes with no mandatory violation, dev's
advisory list is the known one, and each of 20+ prod mutations is caught by the right rule."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.__main__ import main as tools_main
from tools.check import PACK_CONFIG_DIR, CheckResult, PackConfig, evaluate, render_report
from tools.preview import run_program
from tools.recording import RecordedResource, Recording

REPO = Path(__file__).resolve().parents[2]
CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"

# Rules dev is expected to break, advisory only: a laptop lab renews certificates 14 days
# ahead, lets the loopback-only database skip TLS and records no organisational sign-offs.
DEV_ADVISORIES = {
    "certificate-configure-validity",
    "container-enforce-database-tls",
    "stack-missing-attestations",
}


@pytest.fixture(scope="module")
def prod_recording() -> Recording:
    return run_program("prod", seed="policy-tests")


@pytest.fixture(scope="module")
def prod_config() -> PackConfig:
    return PackConfig.load(PACK_CONFIG_DIR / "prod.json")


@pytest.fixture(scope="module")
def prod_baseline(prod_recording, prod_config) -> CheckResult:
    return evaluate(prod_recording, prod_config)


def test_prod_has_no_mandatory_violation(prod_baseline):
    found = [f"{v.policy}: {v.message}" for v in prod_baseline.mandatory]

    assert found == [], "prod breaks mandatory rules:\n" + "\n".join(found)


def test_prod_evaluates_every_rule_without_waiting_on_unknowns(prod_baseline):
    assert len(prod_baseline.evaluated) >= 25 and not prod_baseline.disabled, prod_baseline.disabled
    assert prod_baseline.diagnostics == [], f"rules could not run: {prod_baseline.diagnostics}"


def test_dev_reports_only_the_known_advisories():
    recording = run_program("dev", seed="policy-tests")

    result = evaluate(recording, PackConfig.load(PACK_CONFIG_DIR / "dev.json"))

    assert result.mandatory == [], "dev must never block"
    assert set(result.by_policy()) == DEV_ADVISORIES, (
        f"dev advisories changed: {sorted(result.by_policy())}"
    )


def test_report_lists_attested_items_apart_from_enforced_ones(prod_baseline):
    report = render_report(prod_baseline)

    assert "| Train staff on systems | — | staff-training (attested) | attested |" in report, report
    assert "enforced and passing" in report, "no checklist item shows as enforced"


# A rule whose every subject is a reviewed exception of the pack config says so, and its
# checklist item reads as enforced with exceptions, neither "passing" nor "missing".
def test_report_names_reviewed_exceptions_apart_from_passing_rules(prod_baseline):
    report = render_report(prod_baseline)

    harden = next(line for line in report.splitlines() if line.startswith("| Harden container"))
    assert "`container-enable-read-only-root` (reviewed exceptions)" in harden, harden
    assert harden.endswith("| enforced, with reviewed exceptions |"), harden
    assert "| 5.13 | reviewed exceptions |" in report, "the rule table hides the exceptions"


# --- mutations of the prod recording --------------------------------------------------------


def mutate(kind: str, name: str, change: Callable[[dict[str, Any]], Any]):
    """A recording mutation applying `change` to the inputs and outputs of one resource."""

    def apply(recording: Recording) -> Recording:
        assert any(r.type == kind and r.name == name for r in recording.resources), (
            f"prod has no {kind} named {name} to mutate"
        )
        resources = []
        for resource in recording.resources:
            if resource.type == kind and resource.name == name:
                inputs, outputs = (
                    copy.deepcopy(dict(resource.inputs)),
                    copy.deepcopy(dict(resource.outputs)),
                )
                change(inputs)
                change(outputs)
                resource = dataclasses.replace(resource, inputs=inputs, outputs=outputs)
            resources.append(resource)
        return dataclasses.replace(recording, resources=resources)

    return apply


def remove(kind: str, name: str):
    def apply(recording: Recording) -> Recording:
        kept = [r for r in recording.resources if not (r.type == kind and r.name == name)]
        assert len(kept) < len(recording.resources), f"no {kind} named {name} to remove"
        return dataclasses.replace(recording, resources=kept)

    return apply


def first_of(kind: str) -> Callable[[Recording], RecordedResource]:
    return lambda recording: next(r for r in recording.resources if r.type == kind)


def set_env(name: str, value: str):
    def change(props: dict[str, Any]) -> None:
        envs = [e for e in props.get("envs", []) if not e.startswith(name + "=")]
        props["envs"] = [*envs, f"{name}={value}"]

    return change


def edit_uploads(old: str, new: str):
    def change(props: dict[str, Any]) -> None:
        for upload in props.get("uploads", []):
            if isinstance(upload.get("content"), str):
                upload["content"] = upload["content"].replace(old, new)

    return change


def drop_env(name: str):
    def change(props: dict[str, Any]) -> None:
        props["envs"] = [e for e in props.get("envs", []) if not e.startswith(name + "=")]

    return change


def writable_first_mount(props: dict[str, Any]) -> None:
    props["volumes"][0]["readOnly"] = False


RECORDING_MUTATIONS = [
    (
        "backup without an encryption recipient",
        mutate(CONTAINER, "backup", drop_env("BACKUP_AGE_RECIPIENTS")),
        "container-enable-backup-encryption",
    ),
    (
        "backup mounts a source writable",
        mutate(CONTAINER, "backup", writable_first_mount),
        "stack-missing-backup-coverage",
    ),
    ("no backup job", remove(CONTAINER, "backup"), "stack-missing-backup-coverage"),
    (
        "gateway privileged",
        mutate(CONTAINER, "gateway", lambda p: p.update(privileged=True)),
        "container-disallow-privileged",
    ),
    (
        "database published",
        mutate(
            CONTAINER,
            "database",
            lambda p: p.update(
                ports=[{"internal": 3306.0, "external": 3306.0, "ip": "10.40.0.10"}]
            ),
        ),
        "container-disallow-published-database",
    ),
    (
        "OpenEMR default admin password",
        mutate(CONTAINER, "emr", set_env("OE_PASS", "pass")),
        "container-disallow-default-credentials",
    ),
    (
        "database TLS off",
        # The database reads its files from its carrier: the rule sees them through it.
        mutate(
            CONTAINER,
            "database-files",
            edit_uploads("require_secure_transport = ON", "require_secure_transport = OFF"),
        ),
        "container-enforce-database-tls",
    ),
    (
        "gateway allows TLS 1.0",
        mutate(
            CONTAINER,
            "gateway-files",
            edit_uploads("ssl_protocols TLSv1.2 TLSv1.3", "ssl_protocols TLSv1 TLSv1.2 TLSv1.3"),
        ),
        "container-enforce-gateway-tls",
    ),
    (
        "pacs without no-new-privileges",
        mutate(CONTAINER, "pacs", lambda p: p.update(securityOpts=[])),
        "container-enable-no-new-privileges",
    ),
    (
        "emr keeps default capabilities",
        mutate(CONTAINER, "emr", lambda p: p.update(capabilities={})),
        "container-enforce-capability-drop-all",
    ),
    (
        "database without health check",
        mutate(CONTAINER, "database", lambda p: p.pop("healthcheck")),
        "container-missing-healthcheck",
    ),
    (
        "gateway never restarts",
        mutate(CONTAINER, "gateway", lambda p: p.update(restart="no")),
        "container-configure-restart-policy",
    ),
    (
        "pacs without memory limit",
        mutate(CONTAINER, "pacs", lambda p: p.pop("memory")),
        "container-configure-memory-limit",
    ),
    (
        "edr mounts the docker socket",
        mutate(
            CONTAINER,
            "edr",
            lambda p: p.setdefault("volumes", []).append(
                {"hostPath": "/var/run/docker.sock", "containerPath": "/s"}
            ),
        ),
        "container-disallow-docker-socket",
    ),
    (
        "edr on the host network",
        mutate(CONTAINER, "edr", lambda p: p.update(networkMode="host")),
        "container-disallow-host-namespaces",
    ),
    (
        "gateway publishes on every interface",
        mutate(CONTAINER, "gateway", lambda p: [port.pop("ip", None) for port in p["ports"]]),
        "container-disallow-unbound-ports",
    ),
    (
        "data network routes off the host",
        mutate(NETWORK, "zones-data", lambda p: p.update(internal=False)),
        "stack-disallow-edge-to-data-path",
    ),
    (
        "gateway joins the data zone",
        mutate(
            CONTAINER,
            "gateway",
            lambda p: p["networksAdvanced"].append({"name": "hospital-prod-data"}),
        ),
        "stack-disallow-edge-to-data-path",
    ),
    ("no EDR server", remove(CONTAINER, "edr"), "stack-missing-intrusion-detection"),
    (
        "EMR publishes plain HTTP",
        mutate(
            CONTAINER,
            "emr",
            lambda p: p.update(ports=[{"internal": 80.0, "external": 8080.0, "ip": "10.40.0.10"}]),
        ),
        "container-enforce-tls-on-web-ports",
    ),
    (
        "json-file logs without rotation",
        mutate(CONTAINER, "pacs", lambda p: p.update(logDriver="json-file", logOpts={})),
        "container-configure-log-rotation",
    ),
    (
        "gateway turns access logs off",
        mutate(
            CONTAINER,
            "gateway-files",
            edit_uploads(
                "    access_log /dev/stdout audit buffer=64k flush=1s;", "    access_log off;"
            ),
        ),
        "container-enable-audit-logging",
    ),
]


@pytest.mark.parametrize(
    ("change", "rule"),
    [(change, rule) for _, change, rule in RECORDING_MUTATIONS],
    ids=[label for label, _, _ in RECORDING_MUTATIONS],
)
def test_prod_recording_mutation_is_caught_by_its_rule(
    change, rule, prod_recording, prod_config, prod_baseline
):
    result = evaluate(change(prod_recording), prod_config)

    before = {v.message for v in prod_baseline.violations if v.policy == rule}
    new = [v for v in result.violations if v.policy == rule and v.message not in before]
    assert new, f"{rule} did not catch the mutation; it reported {result.by_policy().keys()}"
    assert all(v.level == "mandatory" and v.citations for v in new), new


# --- mutations of a prod stack file copy ----------------------------------------------------


def old_date(days: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days)).isoformat()


def stack_key(key: str, value: Any) -> Callable[[dict], None]:
    top, *path = key.split(".")

    def change(document: dict) -> None:
        target = document["config"]
        if not path:
            target[f"hospital:{top}"] = value
            return
        target = target[f"hospital:{top}"]
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def drop_attestation(item: str) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        entries = document["config"]["hospital:attestations"]
        document["config"]["hospital:attestations"] = [e for e in entries if e["item"] != item]

    return change


def date_attestation(item: str, days_ago: int) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        for entry in document["config"]["hospital:attestations"]:
            if entry["item"] == item:
                entry["date"] = old_date(days_ago)

    return change


STACK_FILE_MUTATIONS = [
    (
        "restore test 200 days old",
        date_attestation("restore-test", 200),
        "stack-missing-attestations",
    ),
    (
        "rotation older than 90 days",
        stack_key("credentials.rotation", old_date(120)),
        "randompassword-enforce-rotation",
    ),
    (
        "certificates renew a week ahead",
        stack_key("pki.earlyRenewalDays", 7),
        "certificate-configure-validity",
    ),
    (
        "CA valid for 20 years",
        stack_key("pki.caValidityDays", 7300),
        "certificate-configure-validity",
    ),
    (
        "DICOM on privileged port 104",
        stack_key("pacs.dicomPort", 104),
        "container-disallow-privileged-host-ports",
    ),
    (
        "gateway on an unlisted address",
        stack_key("addresses.edge", "10.40.0.99"),
        "container-disallow-unbound-ports",
    ),
    ("log files of 2 GB", stack_key("logging.maxSize", "2g"), "container-configure-log-rotation"),
    (
        "staff training not attested",
        drop_attestation("staff-training"),
        "stack-missing-attestations",
    ),
]


@pytest.mark.parametrize(
    ("change", "rule"),
    [(change, rule) for _, change, rule in STACK_FILE_MUTATIONS],
    ids=[label for label, _, _ in STACK_FILE_MUTATIONS],
)
def test_prod_stack_file_mutation_fails_the_gate_naming_its_rule(change, rule, tmp_path, capsys):
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    change(document)
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))

    exit_code = tools_main(["check", "--stack", "prod", "--stack-file", str(stack_file)])
    output = capsys.readouterr().out

    assert exit_code == 1, f"the gate let the mutation through:\n{output}"
    assert f"[mandatory] {rule}" in output and "HIPAA 164." in output, output


# Weekly backups never reach the pack from a prod stack file: the settings refuse the recovery
# point before anything is registered, naming the key. The pack's schedule rule still guards
# recordings made otherwise (see the recording mutations).
def test_prod_stack_file_with_weekly_backups_is_refused_by_the_settings(tmp_path, capsys):
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["hospital:backup"].update(schedule="0 2 * * 0", rpoHours=168)
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))

    exit_code = tools_main(["check", "--stack", "prod", "--stack-file", str(stack_file)])
    captured = capsys.readouterr()

    assert exit_code != 0, "weekly backups passed the prod gate"
    assert "hospital:backup.rpoHours = 168" in captured.err + captured.out, captured
    assert "[mandatory]" not in captured.out, "no rule may run over a refused stack file"


# A stack other than dev and prod is judged by its environment's pack config.
def test_a_stack_of_the_prod_environment_is_gated_by_prods_pack_config(tmp_path, capsys):
    stack_file = tmp_path / "Pulumi.staging.yaml"
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["hospital:logging"]["maxSize"] = "2g"
    stack_file.write_text(yaml.safe_dump(document))

    exit_code = tools_main(["check", "--stack", "staging", "--stack-file", str(stack_file)])
    output = capsys.readouterr().out

    assert "(policies/config/prod.json)" in output.splitlines()[0], output[:300]
    assert exit_code == 1 and "[mandatory] container-configure-log-rotation" in output, output


# `--first-preview` leaves computed outputs unknown, as a first `pulumi preview` does: rules that
# read them report that they cannot run yet instead of judging.
def test_first_preview_gate_reports_rules_waiting_on_unknowns(capsys):
    settled = tools_main(["check", "--stack", "prod", "--format", "json"])
    settled_report = json.loads(capsys.readouterr().out)

    first = tools_main(["check", "--stack", "prod", "--first-preview", "--format", "json"])
    first_report = json.loads(capsys.readouterr().out)

    assert (settled, first) == (0, 0), "unknown values are advisory, never a mandatory failure"
    assert settled_report["diagnostics"] == [], settled_report["diagnostics"]
    assert first_report["diagnostics"], "a first preview left no rule waiting on unknowns"
    assert all("during preview" in d["message"] for d in first_report["diagnostics"])


def test_the_mutation_matrix_has_at_least_20_changes():
    assert len(RECORDING_MUTATIONS) + len(STACK_FILE_MUTATIONS) >= 20


# --- the command line -----------------------------------------------------------------------


def test_gate_json_names_every_violation_with_its_citation(capsys):
    exit_code = tools_main(["check", "--stack", "dev", "--format", "json"])
    document = json.loads(capsys.readouterr().out)

    assert exit_code == 0, "dev is advisory and must not fail the gate"
    assert document["mandatoryViolations"] == 0 and document["violations"], document
    assert all(v["citations"].startswith("164.") for v in document["violations"]), document


def test_gate_writes_the_compliance_matrix(tmp_path, capsys):
    target = tmp_path / "matrix.md"

    tools_main(["check", "--stack", "dev", "--report", str(target)])
    capsys.readouterr()

    text = target.read_text()
    assert text.startswith("# HIPAA compliance matrix — stack `dev`"), text[:200]
    assert "| Configure log rotation | `container-configure-log-rotation` (passing)" in text, text


def test_gate_refuses_an_invalid_pack_config(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"all": "mandatory", "randompassword-configure-length": {"minimumLength": 2}})
    )

    exit_code = tools_main(["check", "--stack", "dev", "--pack-config", str(bad)])

    assert exit_code == 2, "an invalid pack config must stop the gate before any rule runs"
    assert "minimumLength" in capsys.readouterr().err

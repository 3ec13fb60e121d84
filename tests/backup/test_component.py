"""The Backup component under the offline preview: coverage from the volume labels, the job's
contract with backup/bin/*, secrecy, the built image and the policy pack's backup rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.backup import (
    BUILD_CONTEXT,
    DEFAULT_BASE_IMAGE,
    BackupSettings,
    DatabaseSource,
    image_reference,
    job_environment,
    sensitive_host_path,
)
from components.backup import (
    CAPABILITIES as BACKUP_CAPABILITIES,
)
from tools.check import PackConfig, evaluate
from tools.preview import run_program
from tools.recording import Recording

REPO = Path(__file__).resolve().parents[2]
CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
RECIPIENT = "age192m26zk782sryk93krcl735vsjm9h0cnpua2pjfe0uznt3a4p58qtq3cke"

# The project's own program, run from a copy of the project so that stack files can change.
PROGRAM = f"import sys\nsys.path.insert(0, {str(REPO)!r})\n" + (REPO / "__main__.py").read_text()


def preview(tmp_path: Path, stack: str, **backup_changes) -> Recording:
    """The program over a copy of a committed stack file with `hospital:backup` keys changed."""
    project = tmp_path / f"project-{stack}"
    project.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", project / "Pulumi.yaml")
    document = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    document["config"].setdefault("hospital:backup", {}).update(backup_changes)
    (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    (project / "__main__.py").write_text(PROGRAM)
    return run_program(stack, project_dir=project, seed="backup-tests")


@pytest.fixture(scope="module")
def prod(tmp_path_factory) -> Recording:
    return preview(tmp_path_factory.mktemp("prod"), "prod")


def environment(recording: Recording) -> dict[str, str]:
    lines = recording.named("backup", CONTAINER).input("envs")
    return dict(line.split("=", 1) for line in lines)


def mounts(recording: Recording) -> dict[str, tuple[str, bool]]:
    """Volume name -> (path, read-only) of the named volumes (not the file carrier's)."""
    return {
        m["volumeName"]: (m["containerPath"], bool(m.get("readOnly")))
        for m in recording.named("backup", CONTAINER).input("volumes")
        if "volumeName" in m
    }


# Every phi and config volume is mounted read-only under the source root, found by its label.
def test_every_phi_and_config_volume_is_mounted_read_only(prod):
    labelled = {
        v.input("name")
        for v in prod.of_type(VOLUME)
        if {"label": "hospital.data-class", "value": "phi"} in v.input("labels")
        or {"label": "hospital.data-class", "value": "config"} in v.input("labels")
    }

    mounted = mounts(prod)

    assert labelled, "the prod stack has no phi/config volume to cover"
    for name in labelled:
        assert mounted.get(name) == (f"/volumes/{name}", True), f"{name}: {mounted.get(name)}"
    assert mounted["hospital-prod-backup-archives"] == ("/backups", False)
    assert len(mounted) == len(labelled) + 1, f"unexpected mounts: {sorted(mounted)}"


# The destination holds only ciphertext and is not labelled phi, so it never backs up itself.
def test_destination_volume_is_not_a_backup_source(prod):
    destination = prod.named("backup-archives", VOLUME)

    labels = {label["label"]: label["value"] for label in destination.input("labels")}

    assert labels["hospital.data-class"] == "backup", labels
    assert labels["hospital.service"] == "backup", labels
    assert destination.options.get("retainOnDelete") or destination.retain_on_delete, (
        "prod backups must survive pulumi destroy"
    )


# A volume of another service added later is covered without touching the backup code.
def test_new_phi_volume_is_covered_by_its_label(tmp_path):
    program = PROGRAM.replace(
        'datacenter = HospitalDataCenter("hospital", settings)',
        "from components.datacenter import HospitalDataCenter as _DC\n"
        "class HospitalDataCenter(_DC):\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        import components.database as db\n"
        "        original = db.Database.__init__\n"
        "        def patched(db_self, name, platform, opts=None):\n"
        "            original(db_self, name, platform, opts)\n"
        "            platform.volumes.create('radiology', 'reports', 'phi', db_self)\n"
        "        db.Database.__init__ = patched\n"
        "        try:\n"
        "            super().__init__(*args, **kwargs)\n"
        "        finally:\n"
        "            db.Database.__init__ = original\n"
        'datacenter = HospitalDataCenter("hospital", settings)',
    )
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", project / "Pulumi.yaml")
    shutil.copy(REPO / "Pulumi.prod.yaml", project / "Pulumi.prod.yaml")
    (project / "__main__.py").write_text(program)

    recording = run_program("prod", project_dir=project, seed="backup-tests")

    name = "hospital-prod-radiology-reports"
    assert mounts(recording).get(name) == (f"/volumes/{name}", True), sorted(mounts(recording))
    assert name in recording.export("backup")["coveredVolumes"]


# The variables are exactly what backup/bin/* read, with the settings' values.
def test_job_environment_matches_the_scripts_contract(prod):
    variables = environment(prod)
    scripts = "".join(p.read_text() for p in (BUILD_CONTEXT / "bin").iterdir())
    scripts += (BUILD_CONTEXT / "lib" / "backup-common.sh").read_text()

    unread = [name for name in variables if name != "TZ" and f"{name}" not in scripts]

    assert unread == [], f"variables no script reads: {unread}"
    assert variables["BACKUP_SCHEDULE"] == "0 2 * * *"
    assert variables["BACKUP_AGE_RECIPIENTS"] == RECIPIENT
    assert variables["BACKUP_KEEP_DAILY"] == "14" and variables["BACKUP_KEEP_WEEKLY"] == "8"
    assert variables["BACKUP_RPO_HOURS"] == "24"
    assert variables["BACKUP_DB_HOST"] == "mariadb" and variables["BACKUP_DB_USER"] == "backup"
    assert variables["BACKUP_DB_VOLUME"] == "hospital-prod-database-data"
    assert variables["BACKUP_DB_DATABASES"] == "openemr"


# The schedule is validated by the scheduler itself too: what settings accept, it accepts.
@pytest.mark.parametrize("schedule", ["0 2 * * *", "*/30 * * * *", "15 1,13 * * *", "@daily"])
def test_settings_schedules_are_valid_for_the_scheduler(schedule):
    result = subprocess.run(
        [str(BUILD_CONTEXT / "bin" / "backup-scheduler"), "check", schedule],
        capture_output=True,
        text=True,
        check=False,
    )

    assert BackupSettings(schedule=schedule).schedule == schedule
    assert result.returncode == 0, f"scheduler refuses '{schedule}': {result.stderr}"


# The password reaches the job only as a secret upload; nothing secret is in plain inputs.
def test_password_is_a_secret_file_and_nothing_else_is_secret_in_plain(prod):
    container = prod.named("backup", CONTAINER)
    files = {file.file: file for file in prod.uploaded_files(container)}

    assert files["/etc/backup-job/db-password"].secret, "password in plain"
    assert not files["/etc/backup-job/db-ca.pem"].secret, "the CA need not be secret"
    assert not any("PASSWORD=" in line and "_FILE=" not in line for line in container.input("envs"))
    for secret in prod.secret_values():
        for path, value in prod.plain_strings():
            assert secret not in value, f"a secret appears in plain at {path}"


# The job runs as root with only DAC_READ_SEARCH, on the data zone only, never published.
def test_job_is_least_privileged_and_internal(prod):
    container = prod.named("backup", CONTAINER)

    capabilities = container.input("capabilities")

    assert capabilities["drops"] == ["ALL"] and capabilities["adds"] == ["DAC_READ_SEARCH"]
    assert container.input("user") == "0:0"
    assert not container.input("ports"), "the backup job publishes a port"
    networks = [n["name"] for n in container.input("networksAdvanced")]
    assert networks == ["hospital-prod-data"], networks


# The image is built from backup/Dockerfile on the configured base and tagged by content.
def test_image_is_built_from_the_repository(prod, tmp_path):
    image = prod.named("backup-image", REMOTE_IMAGE)
    build = image.input("build")

    assert build["context"] == str(BUILD_CONTEXT)
    assert build["buildArgs"] == {"BASE": DEFAULT_BASE_IMAGE}
    assert image.input("name") == image_reference(DEFAULT_BASE_IMAGE)
    dockerfile = (BUILD_CONTEXT / "Dockerfile").read_text()
    assert f"ARG BASE={DEFAULT_BASE_IMAGE}" in dockerfile, "Dockerfile default BASE drifted"

    copy = tmp_path / "context"
    shutil.copytree(BUILD_CONTEXT, copy)
    (copy / "bin" / "backup").write_text((copy / "bin" / "backup").read_text() + "\n# changed\n")
    assert image_reference(DEFAULT_BASE_IMAGE, copy) != image_reference(DEFAULT_BASE_IMAGE), (
        "a script change does not change the image tag, so it would never roll out"
    )


# The export carries what the docs and an auditor need, and a runbook with this stack's names.
def test_backup_export_describes_the_plan(prod):
    plan = prod.export("backup")

    assert plan["enabled"] is True
    assert plan["schedule"] == "0 2 * * *" and plan["rpoHours"] == 24
    assert plan["retention"] == {"daily": 14, "weekly": 8}
    assert plan["recipients"] == [RECIPIENT] and len(plan["recipientFingerprints"][0]) == 16
    assert plan["destination"] == "hospital-prod-backup-archives"
    assert plan["container"] == "hospital-prod-backup"
    assert "hospital-prod-database-data" not in plan["coveredVolumes"]
    assert plan["database"]["binlogVolume"] == "hospital-prod-database-data"
    runbook = "\n".join(plan["restoreSteps"])
    assert "--verify-only" in runbook and "--sql-to-stdout --sql-report" in runbook
    assert "docker stop hospital-prod-backup " in runbook, "the runbook leaves the job running"
    assert runbook.count("docker run --rm --network none --user 0:0 ") == 3, (
        "restore containers must run as root (archives are root's) without a network"
    )
    for volume in plan["coveredVolumes"]:
        assert f"-v {volume}:/volumes/{volume}" in runbook, f"runbook misses {volume}"


# A host path destination is a local volume bound to that directory.
def test_host_path_destination_binds_the_directory(tmp_path):
    recording = preview(tmp_path, "prod", hostPath="/srv/hospital-backups")

    volume = recording.named("backup-archives", VOLUME)

    assert volume.input("driverOpts") == {
        "type": "none",
        "o": "bind",
        "device": "/srv/hospital-backups",
    }
    assert recording.export("backup")["destination"] == "/srv/hospital-backups"


# The archives' writable bind stays out of the host's system and Docker directories, however the
# path is spelled; a directory that merely starts with the same letters is the hospital's own.
@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/srv/hospital-backups", None),
        ("/library/backups", None),
        ("/variable/backups", None),
        ("/mnt/etc-backups", None),
        ("/", "is the host's root directory"),
        ("/etc", "lies in /etc"),
        ("/srv/./../etc/backups", "lies in /etc"),
        ("//var//lib//docker/", "lies in /var/lib/docker"),
        ("/lib64/backups", "lies in /lib64, the host's libraries"),
        ("/var", "contains /var/run"),
        ("/srv/docker.sock", "leads to Docker's socket"),
    ],
)
def test_sensitive_host_paths_are_named_with_their_reason(path, reason):
    assert sensitive_host_path(path) == reason, path


# Dev without backups runs no job and says so in the export.
def test_disabled_backups_create_no_job(tmp_path):
    recording = preview(tmp_path, "dev", enabled=False)

    assert not [r for r in recording.of_type(CONTAINER) if r.name == "backup"]
    assert recording.export("backup") == {"enabled": False}


# The policy pack's backup rules pass on the prod plan: encrypted, on schedule, full coverage.
def test_prod_plan_passes_the_backup_policies(prod):
    pack = PackConfig.load(REPO / "policies" / "config" / "prod.json")

    result = evaluate(prod, pack)

    backup_rules = {
        "container-enable-backup-encryption",
        "container-configure-backup-schedule",
        "stack-missing-backup-coverage",
    }
    violations = [v for v in result.violations if v.policy in backup_rules]
    assert violations == [], [v.message for v in violations]


# The database source is optional: a stack without MariaDB gets no DB variables.
def test_environment_without_database_has_no_database_variables():
    variables = job_environment(BackupSettings(), None)

    assert not [name for name in variables if name.startswith("BACKUP_DB_")]
    with_db = job_environment(
        BackupSettings(),
        DatabaseSource("mariadb", 3306, "backup", "openemr", None, "mariadb-bin.*"),
    )
    assert "BACKUP_DB_VOLUME" not in with_db and with_db["BACKUP_DB_PORT"] == "3306"


# With its two reviewed exceptions (root, DAC_READ_SEARCH) the job breaks no rule of the pack.
def test_backup_job_breaks_no_rule_beyond_its_reviewed_exceptions(prod):
    document = json.loads((REPO / "policies" / "config" / "prod.json").read_text())
    document.setdefault("container-disallow-root-user", {}).setdefault("rootServices", [])
    document["container-disallow-root-user"]["rootServices"].append("backup")
    capabilities = document.setdefault("container-enforce-capability-drop-all", {})
    capabilities.setdefault("serviceCapabilities", {})["backup"] = list(BACKUP_CAPABILITIES)

    result = evaluate(prod, PackConfig(document))

    mine = {"backup", "backup-archives", "backup-image"}
    violations = [f"{v.policy}: {v.message}" for v in result.violations if v.resource in mine]
    assert violations == [], violations


def fake_docker(directory: Path, fail_on: str = "") -> Path:
    """A `docker` that logs each call as JSON, prints SQL for --sql-to-stdout, records what
    `exec -i` reads, and fails when its arguments contain `fail_on`."""
    log = directory / "calls.jsonl"
    script = directory / "docker"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "stdin = sys.stdin.read() if args[:2] == ['exec', '-i'] else ''\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        "    log.write(json.dumps({'args': args, 'stdin': stdin}) + '\\n')\n"
        f"if {fail_on!r} and any({fail_on!r} in arg for arg in args):\n"
        "    sys.exit(3)\n"
        "if '--sql-to-stdout' in args:\n"
        "    print('CREATE DATABASE openemr;')\n"
    )
    script.chmod(0o755)
    return log


def restore_stack(tmp_path: Path, plan: dict, *extra: str, fail_on: str = ""):
    exports = tmp_path / "outputs.json"
    exports.write_text(json.dumps({"backup": plan}))
    identity = tmp_path / "hospital.key"
    identity.write_text("AGE-SECRET-KEY-1...\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = fake_docker(bin_dir, fail_on)
    command = [sys.executable, str(BUILD_CONTEXT / "restore_stack.py"), "--stack", "prod"]
    command += ["--backup", "2026-12-03T020000Z", "--identity", str(identity)]
    result = subprocess.run(
        [*command, "--exports", str(exports), *extra],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls, identity


# `make restore` runs verify, stop, database pipe, volumes, start — in that order, with the
# chosen backup and identity in place of the placeholders; the backup job is stopped first and
# started last, so no run overlaps the restore.
def test_restore_stack_runs_the_plan_in_order(prod, tmp_path):
    result, calls, identity = restore_stack(tmp_path, prod.export("backup"))

    assert result.returncode == 0, result.stderr
    verbs = [c["args"][0] for c in calls]
    assert verbs == ["run", "stop", "run", "exec", "run", "start"], verbs
    assert "--verify-only" in calls[0]["args"] and "--sql-to-stdout" in calls[2]["args"]
    assert calls[3]["stdin"] == "CREATE DATABASE openemr;\n", "SQL did not reach the database"
    assert calls[3]["args"][2] == "hospital-prod-database"
    for call in (calls[0], calls[2], calls[4]):
        assert f"{identity}:/run/identity:ro" in call["args"], call["args"]
        assert call["args"][-1] == "/backups/2026-12-03T020000Z", call["args"]
    assert sorted(calls[1]["args"][1:]) == sorted(calls[5]["args"][1:]), "start does not undo stop"
    assert calls[1]["args"][1] == "hospital-prod-backup", f"job not stopped first: {calls[1]}"
    assert calls[5]["args"][-1] == "hospital-prod-backup", f"job not started last: {calls[5]}"
    assert "--require-mounts" in calls[4]["args"], "volume targets may be unmounted paths"


# A backup that fails verification stops the restore before any service is stopped.
def test_restore_stack_stops_nothing_when_verification_fails(prod, tmp_path):
    result, calls, _ = restore_stack(tmp_path, prod.export("backup"), fail_on="--verify-only")

    assert result.returncode == 1
    assert [c["args"][0] for c in calls] == ["run"], calls
    assert "step 'verify' failed" in result.stderr


# --dry-run prints the commands and runs none.
def test_restore_stack_dry_run_runs_nothing(prod, tmp_path):
    result, calls, _ = restore_stack(tmp_path, prod.export("backup"), "--dry-run")

    assert result.returncode == 0, result.stderr
    assert calls == []
    assert "database: docker run" in result.stdout and " | docker exec -i " in result.stdout

"""Backup and recovery on a replayed prod stack: the backup job runs once, the database and Orthanc
volumes are wiped, and the restore script behind `make restore` brings every row and instance back.

Prod encrypts to the hospital's age recipient, whose private key nobody here holds. The replay
has no way to change a recorded field, so this module replays a prod-like recording instead: the
program run on a copy of Pulumi.prod.yaml whose only change is the backup recipient, replaced by
a key generated for the test. The first test proves that is the only difference.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pymysql
import pytest
import yaml
from pydicom.uid import generate_uid

from conformance.clients import (
    database_connection,
    https_get,
    orthanc_dicom,
    orthanc_user,
    storing_modality,
)
from conformance.dicom import sample_ct, store
from conformance.replay import PLACEHOLDER_IMAGE, RUN_LABEL
from tools.preview import run_program

pytestmark = pytest.mark.conformance

REPOSITORY = Path(__file__).resolve().parents[2]
BACKUP_IMAGE = "local/backup"
DICOM_PORT = 4242
ROWS = 3000
INSTANCES = 12
RECIPIENTS_VARIABLE = "BACKUP_AGE_RECIPIENTS"


@pytest.fixture(scope="module")
def test_key(engine, tmp_path_factory) -> tuple[Path, str]:
    """An age identity made for this test by the backup image's own age-keygen, and its
    recipient; the identity stays in a 0600 file outside the stack, like an offline medium."""
    output = engine.containers.run(
        BACKUP_IMAGE, entrypoint=["age-keygen"], network_mode="none", remove=True
    ).decode()
    identity = tmp_path_factory.mktemp("offline-medium") / "hospital-backup.key"
    identity.touch(mode=0o600)
    identity.write_text(output)
    recipient = next(
        line.split(":", 1)[1].strip()
        for line in output.splitlines()
        if line.startswith("# public key:")
    )
    return identity, recipient


@pytest.fixture(scope="module")
def prod_stack_file(test_key, tmp_path_factory) -> Path:
    """Pulumi.prod.yaml with the backup recipients replaced by the test key's, nothing else."""
    _, recipient = test_key
    document = yaml.safe_load((REPOSITORY / "Pulumi.prod.yaml").read_text())
    document["config"]["hospital:backup"]["recipients"] = [recipient]
    stack_file = tmp_path_factory.mktemp("prod-like") / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
    return stack_file


@pytest.fixture(scope="module")
def prod_like(replay_recording, prod_stack_file):
    stack = replay_recording(
        run_program("prod", prod_stack_file, preview=False), "prod (backup recipient: a test key)"
    )
    yield stack
    stack.replay.down()


def _comparable(recording) -> dict[str, dict]:
    """Container inputs without the backup recipient and with uploads reduced to their paths
    (certificates carry their issue time; passwords are equal for equal seeds)."""
    containers = {}
    for resource in recording.of_type("docker:index/container:Container"):
        inputs = dict(resource.inputs)
        inputs["uploads"] = sorted(u["file"] for u in inputs.get("uploads", []))
        inputs["envs"] = sorted(
            e for e in inputs.get("envs", []) if not e.startswith(f"{RECIPIENTS_VARIABLE}=")
        )
        containers[inputs["name"]] = inputs
    return containers


# The prod-like recording differs from prod's only in the backup recipient.
def test_prod_like_recording_differs_from_prod_only_in_the_recipient(prod_stack_file, test_key):
    _, recipient = test_key
    prod = run_program("prod", preview=False, seed="same passwords")

    prod_like = run_program("prod", prod_stack_file, preview=False, seed="same passwords")

    assert _comparable(prod_like) == _comparable(prod), "the stack file copy changed more"
    backup = next(
        r for r in prod_like.of_type("docker:index/container:Container") if "backup" in r.name
    )
    assert f"{RECIPIENTS_VARIABLE}={recipient}" in backup.inputs["envs"]
    assert prod_like.export("backup")["recipients"] == [recipient]


def _database(stack) -> pymysql.connections.Connection:
    return database_connection(stack, tls=True, autocommit=True)


def _seed_database(stack, rng: random.Random) -> None:
    with _database(stack) as connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE patient (id INT PRIMARY KEY, name VARCHAR(80) CHARACTER SET utf8mb4,"
            " born DATE, notes BLOB)"
        )
        cursor.execute("CREATE TABLE encounter (id INT PRIMARY KEY, patient INT, at DATETIME)")
        cursor.executemany(
            "INSERT INTO patient VALUES (%s, %s, %s, %s)",
            [
                (n, f"Zoë Müller-{n}", f"19{rng.randint(30, 99)}-0{rng.randint(1, 9)}-1{n % 10}",
                 rng.randbytes(rng.randint(0, 400)))
                for n in range(ROWS)
            ],
        )  # fmt: skip
        cursor.executemany(
            "INSERT INTO encounter VALUES (%s, %s, %s)",
            [
                (n, rng.randrange(ROWS), f"2026-0{n % 9 + 1}-1{n % 10} 08:00")
                for n in range(ROWS * 2)
            ],
        )


def _database_snapshot(stack) -> dict[str, tuple[int, int]]:
    """Every table of the application schema: (row count, CHECKSUM TABLE)."""
    snapshot = {}
    with _database(stack) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW TABLES")
        for (table,) in cursor.fetchall():
            cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
            count = cursor.fetchone()[0]
            cursor.execute(f"CHECKSUM TABLE `{table}` EXTENDED")
            snapshot[table] = (count, cursor.fetchone()[1])
    return snapshot


def _pacs(stack, path: str) -> httpx.Response:
    """GET through the gateway with the generated admin credentials, verified TLS."""
    response = https_get(stack, "pacs", path, auth=orthanc_user(stack))
    assert response.status_code == 200, f"{path} answered {response.status_code}"
    return response


def _pacs_snapshot(stack) -> dict[str, str]:
    """Every Orthanc instance: its id -> SHA-256 of the DICOM file Orthanc serves."""
    return {
        instance: hashlib.sha256(_pacs(stack, f"/instances/{instance}/file").content).hexdigest()
        for instance in _pacs(stack, "/instances").json()
    }


def _store_studies(stack, host_address) -> None:
    modality = storing_modality(stack)
    studies = [generate_uid() for _ in range(3)]
    instances = [sample_ct(study_uid=studies[n % 3]) for n in range(INSTANCES)]
    outcome = store(
        stack.address("pacs"),
        DICOM_PORT,
        orthanc_dicom(stack)["DicomAet"],
        modality["AET"],
        instances,
        source=host_address(modality["Host"]),
    )
    assert outcome.all_stored, f"could not store the instances to back up: {outcome}"


def _backups(stack) -> set[str]:
    job = stack.replay.container(stack.replay.by_service("backup"))
    listing = job.exec_run(["ls", "/backups"])
    assert listing.exit_code == 0, listing.output.decode(errors="replace")
    return set(listing.output.decode().split())


def _wipe(stack, recorded_volume: str) -> int:
    """Empties a volume from a one-off container; returns the entries left (0 when wiped)."""
    output = stack.replay.client.containers.run(
        PLACEHOLDER_IMAGE,
        ["sh", "-c", "find /v -mindepth 1 -delete && find /v -mindepth 1 | wc -l"],
        volumes={stack.replay.volume_name(recorded_volume): {"bind": "/v", "mode": "rw"}},
        network_mode="none",
        labels={RUN_LABEL: stack.replay.run_id},
        remove=True,
    )
    return int(output.decode().strip())


def _restore(stack, backup: str, identity: Path, workdir: Path) -> str:
    """`make restore`'s script with the stack's backup export, in the replay's names."""
    plan = stack.recording.export("backup")
    commands = {
        step: [stack.replay.engine_command(part) for part in command]
        if command and isinstance(command[0], list)
        else stack.replay.engine_command(command)
        for step, command in plan["restoreCommands"].items()
        if command
    }
    exports = workdir / "outputs.json"
    exports.write_text(json.dumps({"backup": {**plan, "restoreCommands": commands}}))
    result = subprocess.run(
        [sys.executable, str(REPOSITORY / "backup" / "restore_stack.py"), "--stack", "prod",
         "--backup", backup, "--identity", str(identity), "--exports", str(exports)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, f"restore failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


# One backup run, then the database and Orthanc volumes wiped and restored: every row and every
# instance comes back with equal counts and checksums.
def test_backup_then_wipe_then_restore_brings_everything_back(
    prod_like, test_key, host_address, tmp_path
):
    identity, _ = test_key
    replay = prod_like.replay
    database, pacs = replay.by_service("database"), replay.by_service("pacs")
    plan = prod_like.recording.export("backup")
    _seed_database(prod_like, random.Random(20261203))
    _store_studies(prod_like, host_address)
    rows_before, instances_before = _database_snapshot(prod_like), _pacs_snapshot(prod_like)
    earlier = _backups(prod_like)

    run = replay.container(replay.by_service("backup")).exec_run(["backup", "run"])
    [backup] = _backups(prod_like) - earlier
    replay.container(pacs).stop(timeout=30)
    replay.container(database).stop(timeout=30)
    left = {
        volume: _wipe(prod_like, volume)
        for volume in (plan["database"]["binlogVolume"], "hospital-prod-pacs-storage")
    }
    replay.container(database).start()
    replay.wait_healthy(database, 180)
    rows_wiped = _database_snapshot(prod_like)
    restored = _restore(prod_like, backup, identity, tmp_path)
    replay.wait_healthy(pacs, 180)

    assert run.exit_code == 0, run.output.decode(errors="replace")[-2000:]
    assert left == dict.fromkeys(left, 0), f"volumes not emptied: {left}"
    assert rows_wiped == {}, f"the wiped database still has tables: {sorted(rows_wiped)}"
    assert "hospital-prod-pacs-storage" in restored, restored
    assert sum(count for count, _ in rows_before.values()) == ROWS * 3, rows_before
    assert _database_snapshot(prod_like) == rows_before, "database rows differ after restore"
    assert len(instances_before) == INSTANCES, f"{len(instances_before)} instances stored"
    assert _pacs_snapshot(prod_like) == instances_before, "Orthanc instances differ after restore"

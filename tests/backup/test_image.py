"""The backup image on a real Docker engine: built from backup/Dockerfile on the local Debian
base, run hardened like the stack runs it, and restored through one-off containers."""

from __future__ import annotations

import random
import shutil
import subprocess
import time
import uuid

import pytest
from backup_rig import BIN, DATABASES, database_snapshot, seed_sql

pytestmark = pytest.mark.conformance

BASE = "local/debian:bookworm"
TAG = "local/backup-job:conformance"
CONTEXT = BIN.parent


def docker(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Debian's client when installed (the one that speaks to this engine with BuildKit)."""
    client = "/usr/bin/docker" if shutil.which("/usr/bin/docker") else "docker"
    result = subprocess.run([client, *args], capture_output=True, check=False, **kwargs)
    if check:
        assert result.returncode == 0, f"docker {' '.join(args[:3])}: {result.stderr!r}"
    return result


@pytest.fixture(scope="module")
def image() -> str:
    if docker("image", "inspect", BASE, check=False).returncode != 0:
        pytest.fail(f"{BASE} is missing: run `python -m conformance.build` (make conformance)")
    docker("build", "-q", "--build-arg", f"BASE={BASE}", "-t", TAG, str(CONTEXT))
    return TAG


@pytest.fixture
def names():
    """Unique names for this test's volumes and container, removed afterwards."""
    suffix = uuid.uuid4().hex[:8]
    created = {kind: f"bk-{kind}-{suffix}" for kind in ("phi", "dest", "restored", "job")}
    for kind in ("phi", "dest", "restored"):
        docker("volume", "create", created[kind])
    yield created
    docker("rm", "-f", created["job"], check=False)
    docker("volume", "rm", created["phi"], created["dest"], created["restored"], check=False)


def tree(volume: str) -> str:
    listing = docker(
        "run",
        "--rm",
        "-v",
        f"{volume}:/v:ro",
        BASE,
        "sh",
        "-c",
        "cd /v && find . -printf '%p %U %G %m %s %T@\\n' -type f -exec md5sum {} + | sort",
        text=True,
    )
    return listing.stdout


# Job in the stack's hardening, then database and volume restored from one-off containers.
def test_image_backs_up_and_restores_through_containers(image, names, mariadb, age_keys):
    mariadb.sql(seed_sql(random.Random(11)))
    rows_before = database_snapshot(mariadb)
    docker(
        "run", "--rm", "-v", f"{names['phi']}:/d", BASE, "sh", "-c",
        "mkdir -p /d/ab/cd && head -c 2000000 /dev/urandom > /d/ab/cd/1.dcm"
        " && echo 'Zoë' > '/d/ab/名前 1.txt' && chown -R 999:999 /d && chmod 0600 /d/ab/cd/1.dcm"
        " && chmod 0700 /d/ab",
    )  # fmt: skip
    files_before = tree(names["phi"])

    docker(
        "run", "-d", "--name", names["job"], "--network", "host", "--read-only",
        "--tmpfs", "/tmp", "--user", "0:0", "--cap-drop", "ALL",
        "--cap-add", "DAC_READ_SEARCH", "--security-opt", "no-new-privileges",
        "-e", "BACKUP_RUN_ON_START=true", "-e", f"BACKUP_AGE_RECIPIENTS={age_keys.recipient}",
        "-e", "BACKUP_DB_HOST=127.0.0.1", "-e", f"BACKUP_DB_PORT={mariadb.port}",
        "-e", "BACKUP_DB_PASSWORD_FILE=/etc/backup-job/db-password",
        "-e", "BACKUP_DB_CA_FILE=/etc/backup-job/db-ca.pem",
        "-v", f"{mariadb.backup_password_file}:/etc/backup-job/db-password:ro",
        "-v", f"{mariadb.tls.ca_file}:/etc/backup-job/db-ca.pem:ro",
        "-v", f"{names['phi']}:/volumes/{names['phi']}:ro", "-v", f"{names['dest']}:/backups",
        image,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    logs = ""
    while "scheduler: backup" not in logs and time.monotonic() < deadline:
        logs = docker("logs", names["job"], text=True).stderr
        time.sleep(0.2)  # polling the job's log for its first run; no fixed wait
    health = docker("exec", names["job"], "backup-healthcheck", check=False, text=True)
    [backup] = docker(
        "run", "--rm", "--user", "0:0", "-v", f"{names['dest']}:/backups:ro",
        "--entrypoint", "ls", image, "/backups", text=True,
    ).stdout.split()  # fmt: skip

    for database in DATABASES:
        mariadb.sql(f"DROP DATABASE {database}")
    one_off = [
        "run", "--rm", "--network", "none", "--user", "0:0",
        "-v", f"{names['dest']}:/backups:ro", "-v", f"{age_keys.identity}:/run/identity:ro",
    ]  # fmt: skip
    sql = docker(
        *one_off, "--entrypoint", "restore", image, "--identity", "/run/identity",
        "--sql-to-stdout", f"/backups/{backup}",
    )  # fmt: skip
    mariadb.sql(sql.stdout.decode())
    restored = docker(
        *one_off[:-4], "-v", f"{names['dest']}:/backups:ro",
        "-v", f"{age_keys.identity}:/run/identity:ro",
        "-v", f"{names['restored']}:/volumes/{names['phi']}",
        "--entrypoint", "restore", image, "--identity", "/run/identity", "--skip-database",
        "--volumes-root", "/volumes", f"/backups/{backup}", text=True,
    )  # fmt: skip

    assert "scheduler: backup succeeded" in logs, logs
    assert health.returncode == 0, health.stdout
    assert database_snapshot(mariadb) == rows_before, "database differs after the restore"
    assert tree(names["restored"]) == files_before, "volume differs after the restore"
    assert f"volume    {names['phi']}" in restored.stdout, restored.stdout

"""The stack's restore plan as `make restore` runs it (backup/restore_stack.py), against the rig's
real MariaDB and volumes: `docker` is a stand-in that runs each one-off container's `restore` on
the host with the container's paths mapped to the rig's, and `docker exec` as the root client."""

import json
import os
import re
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from backup_rig import (
    BIN,
    ENCOUNTERS,
    PATIENTS,
    STUDIES,
    VOLUME_NAMES,
    database_snapshot,
    mounted,
    volume_snapshots,
    wipe,
)

from components.backup import DEST_PATH, SOURCE_ROOT, restore_commands

IMAGE = "hospital-backup:test"
ARCHIVES = "hospital-test-backup-archives"
JOB = "hospital-test-backup"
WRITERS = ["hospital-test-emr", "hospital-test-pacs"]
DATABASE = "hospital-test-database"

STAND_IN = """#!{python}
import json, subprocess, sys

with open({config!r}) as handle:
    config = json.load(handle)
args = sys.argv[1:]
with open(config["log"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] in ("stop", "start"):
    sys.exit(0)
if args[0] == "exec":
    flags = args[-1].split("exec mariadb --user=root", 1)[1].split()
    sys.exit(subprocess.run([*config["root_client"], *flags]).returncode)
image = args.index(config["image"])
mounts = dict(config["roots"])
for flag, value in zip(args[:image], args[1:image]):
    if flag == "-v":
        source, target = value.split(":")[:2]
        mounts[target] = config["volumes"].get(source, source)


def on_host(argument):
    for target in sorted(mounts, key=len, reverse=True):
        if argument == target or argument.startswith(target + "/"):
            return mounts[target] + argument[len(target):]
    return argument


entrypoint = args[args.index("--entrypoint") + 1]
command = [config["bin"] + "/" + entrypoint, *map(on_host, args[image + 1:])]
sys.exit(subprocess.run(command, env=config["env"]).returncode)
"""


def stand_in_docker(rig, directory: Path) -> Path:
    """Writes the `docker` stand-in into directory; returns the log of its calls."""
    directory.mkdir()
    log = directory / "calls.jsonl"
    config = directory / "config.json"
    volumes = {name: str(rig.volumes / name) for name in VOLUME_NAMES}
    config.write_text(
        json.dumps(
            {
                "log": str(log),
                "image": IMAGE,
                "bin": str(BIN),
                "root_client": rig.database.root_client(),
                "volumes": {ARCHIVES: str(rig.dest), **volumes},
                "roots": {SOURCE_ROOT: str(rig.volumes)},
                "env": {"PATH": os.environ["PATH"]},
            }
        )
    )
    docker = directory / "docker"
    docker.write_text(STAND_IN.format(python=sys.executable, config=str(config)))
    docker.chmod(0o755)
    return log


def exports(directory: Path) -> Path:
    """`pulumi stack output --json` of a stack whose names the stand-in knows."""
    commands = restore_commands(
        image=IMAGE,
        archives=ARCHIVES,
        volumes=list(VOLUME_NAMES),
        writers=WRITERS,
        job=JOB,
        database_container=DATABASE,
        root_password_file="/run/root-password",
    )
    path = directory / "outputs.json"
    path.write_text(json.dumps({"backup": {"enabled": True, "restoreCommands": commands}}))
    return path


# `make restore` brings back every row and file, reports the tables and rows it loaded as the
# direct restore does, and stops the backup job first and starts it last.
def test_make_restore_restores_and_reports_tables_and_rows(rig, tmp_path):
    rows_before, files_before = database_snapshot(rig.database), volume_snapshots(rig)
    rig.backup()
    [backup] = rig.backups()
    wipe(rig)
    log = stand_in_docker(rig, tmp_path / "bin")
    identity = tmp_path / "identity.txt"
    identity.write_bytes(rig.keys.identity.read_bytes())
    command = [sys.executable, str(BIN.parent / "restore_stack.py"), "--stack", "test"]
    command += ["--backup", backup.name, "--identity", str(identity)]
    command += ["--exports", str(exports(tmp_path))]

    with ExitStack() as mounts:
        for name in VOLUME_NAMES:
            mounts.enter_context(mounted(rig.volumes / name, "--bind", str(rig.volumes / name)))
        result = subprocess.run(
            command,
            env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            check=False,
        )
        files_after = volume_snapshots(rig)

    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert result.returncode == 0, f"make restore failed:\n{result.stdout}\n{result.stderr}"
    rows = PATIENTS + ENCOUNTERS + STUDIES
    assert re.search(
        rf"^database  emr orthanc: 3 tables, {rows} rows, \d+ bytes of SQL$",
        result.stdout,
        re.MULTILINE,
    ), f"the database step reported no tables and rows:\n{result.stdout}"
    assert database_snapshot(rig.database) == rows_before, "the database differs after restore"
    assert files_after == files_before, "the volumes differ after restore"
    assert calls[1] == ["stop", JOB, *WRITERS], f"the job is not stopped first: {calls[1]}"
    assert calls[-1] == ["start", *WRITERS, JOB], f"the job is not started last: {calls[-1]}"
    assert f"{DEST_PATH}/{backup.name}" in calls[0], calls[0]

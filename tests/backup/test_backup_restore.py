"""Backup and restore for real: a TLS MariaDB and files on disk, backed up, wiped, restored and
compared; tampering, wrong keys and unreachable databases are refused."""

import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from backup_rig import (
    BACKUP_PASSWORD,
    BIN,
    DATABASES,
    ENCOUNTERS,
    PATIENTS,
    RESTORE_PASSWORD,
    STUDIES,
    VOLUME_NAMES,
    client_option_text,
    database_snapshot,
    ensure_binaries,
    manifest_entries,
    paused_run,
    sql_string,
    tree_snapshot,
    volume_snapshots,
    wipe,
)


# The whole point: every row, definition, file, owner and mode comes back after a wipe.
def test_round_trip_loses_no_row_and_no_file(rig):
    rows_before = database_snapshot(rig.database)
    files_before = volume_snapshots(rig)
    rig.backup()
    [backup] = rig.backups()

    wipe(rig)
    result = rig.restore(backup)

    assert database_snapshot(rig.database) == rows_before, "the restored database differs"
    for name, before in files_before.items():
        after = tree_snapshot(rig.volumes / name)
        assert after == before, f"volume {name} differs after restore: {set(after) ^ set(before)}"
    rows = PATIENTS + ENCOUNTERS + STUDIES
    assert f"emr orthanc: 3 tables, {rows} rows" in result.stdout, result.stdout
    assert "orthanc-storage -> " in result.stdout, result.stdout


# The dump uses only the documented grants, and those grants cannot change anything.
def test_backup_account_has_read_only_grants(rig):
    result = subprocess.run(
        [
            "mariadb",
            "--defaults-file=/dev/stdin",
            "--host=127.0.0.1",
            f"--port={rig.database.port}",
            "--user=backup",
            f"--ssl-ca={rig.database.tls.ca_file}",
            "--ssl-verify-server-cert",
            "--execute=INSERT INTO emr.encounters (id, patient_id) VALUES (999999, 1)",
        ],
        input=client_option_text(BACKUP_PASSWORD),
        capture_output=True,
        text=True,
        check=False,
    )
    grants = rig.database.sql("SHOW GRANTS FOR backup@'%'")

    assert "INSERT command denied" in result.stderr, f"backup account could write: {result}"
    privileges = set(grants.split("GRANT ", 1)[1].split(" ON *.*", 1)[0].split(", "))
    assert privileges == {"SELECT", "SHOW VIEW", "TRIGGER", "EVENT"}, grants
    assert "REQUIRE SSL" in grants, "the backup account may connect without TLS"


# The manifest names every archive with its size, checksum and source; nothing is unlisted.
def test_manifest_lists_database_and_every_volume_with_checksums(rig):
    rig.backup()
    [backup] = rig.backups()

    entries = manifest_entries(backup)

    assert {(e["kind"], e["source"]) for e in entries} == {
        ("database", "emr,orthanc"),
        *(("volume", name) for name in VOLUME_NAMES),
    }
    for entry in entries:
        content = (backup / entry["file"]).read_bytes()
        assert hashlib.sha256(content).hexdigest() == entry["sha256"], entry["file"]
        assert len(content) == int(entry["bytes"]), entry["file"]
    assert sorted(p.name for p in backup.iterdir()) == sorted(
        ["MANIFEST", *(e["file"] for e in entries)]
    ), "the backup holds a file its manifest does not list"


# Every archive is age ciphertext: no patient name or file content is readable on the volume.
def test_archives_are_encrypted(rig):
    rig.backup()
    [backup] = rig.backups()

    for archive in backup.glob("*.age"):
        content = archive.read_bytes()
        assert content.startswith(b"age-encryption.org/v1\n"), f"{archive.name} is not age"
        for plaintext in (b"Zo\xc3\xab", b"%PDF-1.4", b"CREATE TABLE", b"ultraschall"):
            assert plaintext not in content, f"{archive.name} leaks {plaintext!r}"
    assert oct((backup).stat().st_mode & 0o777) == "0o700", "backup directory is not private"


# A volume added later is covered with no change of configuration.
def test_new_volume_is_backed_up_without_configuration(rig):
    (rig.volumes / "new-phi-volume").mkdir()
    (rig.volumes / "new-phi-volume" / "scan.dcm").write_bytes(b"DICM" * 100)

    rig.backup()

    [backup] = rig.backups()
    sources = {e["source"] for e in manifest_entries(backup) if e["kind"] == "volume"}
    assert "new-phi-volume" in sources, f"new volume missing from manifest: {sources}"


def flip_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))


TAMPERINGS = {
    "flipped byte": lambda b: flip_byte(b / "volume-orthanc-storage.tar.zst.age"),
    "truncated archive": lambda b: (b / "mariadb.sql.zst.age").write_bytes(
        (b / "mariadb.sql.zst.age").read_bytes()[:-100]
    ),
    "removed archive": lambda b: (b / "volume-openemr-sites.tar.zst.age").unlink(),
    "archive removed with its line": lambda b: (
        (b / "volume-openemr-sites.tar.zst.age").unlink(),
        (b / "MANIFEST").write_text(
            "".join(
                line
                for line in (b / "MANIFEST").read_text().splitlines(keepends=True)
                if not line.endswith("\tvolume-openemr-sites.tar.zst.age\n")
            )
        ),
    ),
    "manifest cut short": lambda b: (b / "MANIFEST").write_text(
        "".join((b / "MANIFEST").read_text().splitlines(keepends=True)[:-2])
    ),
    "unlisted file": lambda b: (b / "volume-extra.tar.zst.age").write_bytes(b"x"),
    "missing manifest": lambda b: (b / "MANIFEST").unlink(),
    "edited manifest": lambda b: (b / "MANIFEST").write_text(
        (b / "MANIFEST").read_text().replace("\tvolume\torthanc-storage\t", "\tvolume\t../etc\t")
    ),
}


# A backup that was changed after it was written is refused before anything is overwritten.
@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_tampered_backup_is_rejected_before_anything_is_written(rig, tampering):
    rig.backup()
    [backup] = rig.backups()
    TAMPERINGS[tampering](backup)
    rows_before = database_snapshot(rig.database)
    files_before = volume_snapshots(rig)

    result = rig.restore(backup, check=False)

    assert result.returncode != 0, f"restore accepted a backup with a {tampering}"
    assert database_snapshot(rig.database) == rows_before, "database changed by a refused restore"
    assert volume_snapshots(rig) == files_before, "volumes changed by a refused restore"


# Only the hospital's identity opens the backup; another key is refused up front.
def test_wrong_identity_is_rejected_before_anything_is_written(rig):
    rig.backup()
    [backup] = rig.backups()
    files_before = volume_snapshots(rig)

    result = rig.restore(backup, identity=rig.keys.other_identity, check=False)

    assert result.returncode != 0, "restore ran with a key the backup was not encrypted to"
    assert "wrong key" in result.stderr, result.stderr
    assert volume_snapshots(rig) == files_before, "volumes changed by a refused restore"


# --verify-only proves a backup restorable (for periodic contingency tests) and writes nothing.
def test_verify_only_checks_without_writing(rig):
    rig.backup()
    [backup] = rig.backups()
    wipe(rig)
    files_before = volume_snapshots(rig)

    result = rig.restore(backup, "--verify-only")

    assert "verified  4 files" in result.stdout, result.stdout
    assert volume_snapshots(rig) == files_before, "verify-only wrote a volume"
    assert rig.database.sql("SHOW DATABASES LIKE 'emr'") == "", "verify-only loaded the dump"


# The runbook's verify step, with exactly the arguments the backup export hands to `restore`,
# verifies a real backup on its own: no volume targets and no database connection are needed.
def test_exported_verify_step_verifies_a_backup(rig):
    from components.backup import BACKUP_PLACEHOLDER, restore_commands

    rig.backup()
    [backup] = rig.backups()
    verify = restore_commands(
        image="backup-image",
        archives="archives",
        volumes=list(VOLUME_NAMES),
        writers=["pacs"],
        job="backup",
        database_container="database",
        root_password_file="/run/root-password",
    )["verify"]
    arguments = [
        str(rig.keys.identity) if a == "/run/identity" else str(backup) if a == BACKUP_PLACEHOLDER
        else a
        for a in verify[verify.index("backup-image") + 1 :]
    ]  # fmt: skip

    result = rig.run("restore", *arguments, env={"PATH": os.environ["PATH"]}, check=False)

    assert result.returncode == 0, f"the exported verify step failed: {result.stderr}"
    assert "verified  4 files" in result.stdout, result.stdout


# A failing run is recorded as a failure, leaves no partial backup and keeps the last success.
def test_failed_run_is_recorded_and_leaves_nothing_behind(rig):
    rig.backup()
    last_success = (rig.dest / ".status" / "last-success").read_text()

    result = rig.run("backup", "run", env=rig.env(BACKUP_DB_PORT="1"), check=False)

    status = json.loads((rig.dest / ".status" / "last-run.json").read_text())
    assert result.returncode != 0, "backup succeeded without its database"
    assert status["outcome"] == "failure", status
    assert (rig.dest / ".status" / "last-success").read_text() == last_success
    assert [p.name for p in rig.dest.iterdir() if p.name.startswith(".incoming")] == []
    assert len(rig.backups()) == 1, "a failed run published a backup"


# Without a recipient nothing is written: backups are never stored unencrypted.
def test_backup_refuses_to_run_without_a_recipient(rig):
    result = rig.run("backup", "run", env=rig.env(BACKUP_AGE_RECIPIENTS=""), check=False)

    assert result.returncode != 0, "backup ran without encryption"
    assert "no age recipient" in result.stderr, result.stderr
    assert rig.backups() == [], "an unencrypted backup was published"


# The passwords live only in files: not in argv, not in the environment, not in any output.
def test_passwords_never_reach_argv_environment_or_output(rig, tmp_path):
    spy_dir = tmp_path / "spy"
    spy_dir.mkdir()
    record = tmp_path / "calls"
    for tool in ("mariadb", "mariadb-dump"):
        spy = spy_dir / tool
        spy.write_text(
            "#!/bin/bash\n"
            f'{{ printf "%s\\n" "$0" "$@"; env; }} >> "{record}"\n'
            f'exec {shutil.which(tool)} "$@"\n'
        )
        spy.chmod(0o755)
    env = rig.env(PATH=f"{spy_dir}:{os.environ['PATH']}")

    outputs = [rig.run("backup", "run", env=env)]
    outputs.append(rig.run("backup", "run", env={**env, "BACKUP_DB_PORT": "1"}, check=False))
    [backup, *_] = rig.backups()
    outputs.append(
        rig.run(
            "restore",
            "--identity",
            str(rig.keys.identity),
            "--volumes-root",
            str(rig.volumes),
            *rig.database.restore_args(),
            str(backup),
            env=env,
        )
    )

    calls = record.read_text()
    assert "mariadb-dump" in calls and "restorer" in calls, "the spies saw no client call"
    for secret in (BACKUP_PASSWORD, RESTORE_PASSWORD):
        assert secret not in calls, "a password reached a client's argv or environment"
        for output in outputs:
            assert secret not in output.stdout + output.stderr, "a password was printed"
    for path in rig.dest.rglob("*"):
        if path.is_file():
            assert BACKUP_PASSWORD.encode() not in path.read_bytes(), f"password in {path}"


def fake_backup(dest: Path, name: str) -> None:
    (dest / name).mkdir()
    (dest / name / "MANIFEST").write_text("# hospital-backup manifest 1\n")


# Retention keeps the newest backup of each of the last N days and the last M ISO weeks.
def test_retention_keeps_newest_per_day_and_per_week(rig):
    start = datetime.date(2026, 9, 1)
    names = []
    for offset in range(60):
        day = start + datetime.timedelta(days=offset)
        for hour in ("020000", "140000"):
            names.append(f"{day.isoformat()}T{hour}Z")
    names.append("2026-10-30T140000Z-2")
    for name in names:
        fake_backup(rig.dest, name)
    for foreign in ("lost+found", "2026-13-99-not-a-backup", ".incoming-2026-10-30T150000Z-77"):
        (rig.dest / foreign).mkdir()

    rig.run("backup", "prune", env=rig.env(BACKUP_KEEP_DAILY="7", BACKUP_KEEP_WEEKLY="5"))

    newest_first = sorted(names, reverse=True)
    expected: set[str] = set()
    days: list[str] = []
    weeks: list[tuple[int, int]] = []
    for name in newest_first:
        day = datetime.date.fromisoformat(name[:10])
        week = day.isocalendar()[:2]
        if name[:10] not in days and len(days) < 7:
            days.append(name[:10])
            expected.add(name)
        if week not in weeks and len(weeks) < 5:
            weeks.append(week)
            expected.add(name)
    kept = {p.name for p in rig.backups()}
    assert kept == expected, f"kept {sorted(kept ^ expected)} wrongly"
    assert "2026-10-30T140000Z-2" in kept, "the newest backup of a day must be the suffixed one"
    assert (rig.dest / "lost+found").is_dir(), "prune touched a directory that is not a backup"
    assert (rig.dest / "2026-13-99-not-a-backup").is_dir()
    assert not (rig.dest / ".incoming-2026-10-30T150000Z-77").exists(), "crash leftover kept"


# Each run prunes right after publishing; the run just taken always survives.
def test_run_applies_retention_and_keeps_the_new_backup(rig):
    for day in range(1, 10):
        fake_backup(rig.dest, f"2026-01-0{day}T020000Z")

    rig.backup(BACKUP_KEEP_DAILY="3", BACKUP_KEEP_WEEKLY="0")

    kept = [p.name for p in rig.backups()]
    assert len(kept) == 3, kept
    assert kept[-1] == (rig.dest / ".status" / "last-success").read_text().split()[1]
    assert kept[:2] == ["2026-01-08T020000Z", "2026-01-09T020000Z"], kept


def healthcheck(rig, rpo_hours="24"):
    return rig.run("backup-healthcheck", env=rig.env(BACKUP_RPO_HOURS=rpo_hours), check=False)


def write_state(rig, name: str, content: str) -> None:
    (rig.dest / ".status").mkdir(exist_ok=True)
    (rig.dest / ".status" / name).write_text(content + "\n")


def now() -> int:
    return int(time.time())


# Healthy right after a good backup; unhealthy once it is older than the RPO.
def test_healthcheck_fails_when_last_good_backup_is_older_than_rpo(rig):
    rig.backup()
    fresh = healthcheck(rig)
    name = (rig.dest / ".status" / "last-success").read_text().split()[1]

    write_state(rig, "last-success", f"{now() - 25 * 3600} {name}")
    stale = healthcheck(rig)

    assert fresh.returncode == 0, fresh.stdout
    assert stale.returncode == 1, f"a 25 h old backup passed a 24 h RPO: {stale.stdout}"
    assert "over the RPO" in stale.stdout


# A good backup records when it started (its recovery point) first, then its name and its end.
def test_last_success_records_the_start_as_the_recovery_point(rig, tmp_path):
    command = [str(BIN / "backup"), "run"]
    with paused_run(rig, tmp_path / "paused", command, "zstd", "-T2") as (run, paused):
        # The run is held inside its first archive until the clock has left the second it
        # started in, so its start and its end differ; the wait is bounded by that second.
        [staging] = rig.dest.glob(".incoming-*")
        stamp = re.match(r"\.incoming-(.+Z)-[0-9]+$", staging.name).group(1)
        start = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H%M%SZ")
        time.sleep(max(0.0, start.replace(tzinfo=datetime.UTC).timestamp() + 1 - time.time()))
        paused.release()
        _, errors = run.communicate(timeout=300)

    status = json.loads((rig.dest / ".status" / "last-run.json").read_text())
    started, name, finished = (rig.dest / ".status" / "last-success").read_text().split()

    assert run.returncode == 0, errors
    assert status["finished_epoch"] > status["started_epoch"], status
    assert int(started) == status["started_epoch"], "last-success does not begin with the start"
    assert name == status["backup"] and int(finished) == status["finished_epoch"], status


# A backup that finished a minute ago but started 25 h ago is over a 24 h RPO: the data it holds
# may be that old. The scheduler takes one at start for the same reason.
def test_recovery_point_is_counted_from_the_backup_start(rig):
    rig.backup(BACKUP_DB_HOST="")
    name = (rig.dest / ".status" / "last-success").read_text().split()[1]
    write_state(rig, "last-success", f"{now() - 25 * 3600} {name} {now() - 60}")

    health = healthcheck(rig)
    lines = serve_until_waiting(rig)

    assert health.returncode == 1, f"a backup started 25 h ago passed a 24 h RPO: {health.stdout}"
    assert "started 25 h ago" in health.stdout, health.stdout
    assert any("taking one now" in line for line in lines), "".join(lines)


# A young container without a backup is in its grace period; an old one is not.
@pytest.mark.parametrize(("started_ago_hours", "healthy"), [(1, True), (25, False)])
def test_healthcheck_grace_for_a_young_scheduler_without_backup(rig, started_ago_hours, healthy):
    write_state(rig, "scheduler-started", str(now() - started_ago_hours * 3600))

    result = healthcheck(rig)

    assert (result.returncode == 0) is healthy, result.stdout


# A success record pointing at a backup that is gone (pruned, deleted) is not health.
def test_healthcheck_fails_when_the_last_backup_is_gone(rig):
    rig.backup()
    [backup] = rig.backups()
    shutil.rmtree(backup)

    result = healthcheck(rig)

    assert result.returncode == 1, result.stdout
    assert "no longer on" in result.stdout


def next_run(expression: str, after: str) -> str:
    epoch = int(datetime.datetime.fromisoformat(after + "+00:00").timestamp())
    result = subprocess.run(
        [str(BIN / "backup-scheduler"), "next", expression, str(epoch)],
        env={"PATH": os.environ["PATH"], "TZ": "UTC"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    moment = datetime.datetime.fromtimestamp(int(result.stdout), datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M %a")


# The scheduler's cron matcher follows cron: lists, ranges, steps, names, Sunday as 0 or 7, and
# day-of-month OR day-of-week when both are restricted. Reference: 2025-12-04 is a Thursday.
@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 2 * * *", "2025-12-04T00:00", "2025-12-04 02:00 Thu"),
        ("0 2 * * *", "2025-12-04T02:00", "2025-12-05 02:00 Fri"),
        ("*/15 * * * *", "2025-12-04T10:07", "2025-12-04 10:15 Thu"),
        ("30 1,13 * * *", "2025-12-04T02:00", "2025-12-04 13:30 Thu"),
        ("0 0 * * 7", "2025-12-04T00:00", "2025-12-07 00:00 Sun"),
        ("0 0 * * sun", "2025-12-04T00:00", "2025-12-07 00:00 Sun"),
        ("0 3 * * mon-fri", "2025-12-05T04:00", "2025-12-08 03:00 Mon"),
        ("0 0 1 * mon", "2025-12-04T00:00", "2025-12-08 00:00 Mon"),
        ("0 0 13 * fri", "2025-12-06T00:00", "2025-12-12 00:00 Fri"),
        ("0 4 29 feb *", "2025-12-04T00:00", "2028-02-29 04:00 Tue"),
        ("5/20 22-23 * dec *", "2025-12-04T23:30", "2025-12-04 23:45 Thu"),
        ("@weekly", "2025-12-04T00:00", "2025-12-07 00:00 Sun"),
        ("@daily", "2025-12-31T23:59", "2026-01-01 00:00 Thu"),
    ],
)
def test_cron_schedule_next_run(expression, after, expected):
    assert next_run(expression, after) == expected, f"next run of '{expression}' after {after}"


# A malformed schedule stops the scheduler at start instead of never running a backup.
@pytest.mark.parametrize(
    "expression",
    [
        "",
        "0 2 * *",
        "60 2 * * *",
        "0 24 * * *",
        "0 2 0 * *",
        "0 2 * 13 *",
        "*/0 * * * *",
        "0 2 * * funday",
        "5-1 * * * *",
        "@reboot",
        "0 2 * * * *",
    ],
)
def test_invalid_cron_schedule_is_rejected(expression):
    result = subprocess.run(
        [str(BIN / "backup-scheduler"), "check", expression],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 2, f"'{expression}' was accepted as a schedule"


# The database's own volume contributes only its binary logs: the dump holds the tables.
def test_database_volume_contributes_only_binary_logs(rig, tmp_path):
    data = rig.volumes / "hospital-dev-database-data"
    (data / "openemr").mkdir(parents=True)
    (data / "ibdata1").write_bytes(b"\x00" * 4096)
    (data / "openemr" / "patient_data.ibd").write_bytes(b"\x01" * 4096)
    for log in ("mariadb-bin.000001", "mariadb-bin.000002", "mariadb-bin.index"):
        (data / log).write_bytes(log.encode() * 10)

    rig.backup(BACKUP_DB_VOLUME=data.name)
    [backup] = rig.backups()
    (tmp_path / "binlogs").mkdir()
    kept_out = rig.restore(backup, "--skip-database", "--verify-only")
    extracted = rig.restore(
        backup, "--skip-database", "--skip-volumes", "--binlogs-dir", str(tmp_path / "binlogs")
    )

    entries = {(e["kind"], e["source"]) for e in manifest_entries(backup)}
    assert ("binlogs", data.name) in entries and ("volume", data.name) not in entries, entries
    assert "--binlogs-dir DIR extracts them" in kept_out.stdout, kept_out.stdout
    restored = sorted(p.name for p in (tmp_path / "binlogs" / data.name).iterdir())
    assert restored == ["mariadb-bin.000001", "mariadb-bin.000002", "mariadb-bin.index"], (
        f"binary log extraction brought {restored}: {extracted.stdout}"
    )
    assert (data / "ibdata1").exists(), "the database volume was touched by a restore"


# --sql-to-stdout hands a verified dump to a client elsewhere (inside the database container).
def test_sql_to_stdout_loads_into_a_wiped_database(rig):
    rows_before = database_snapshot(rig.database)
    rig.backup()
    [backup] = rig.backups()
    for database in DATABASES:
        rig.database.sql(f"DROP DATABASE {database}")

    result = rig.run(
        "restore", "--identity", str(rig.keys.identity), "--sql-to-stdout", str(backup)
    )
    rig.database.sql(result.stdout)

    assert "written to stdout" in result.stderr, result.stderr
    assert database_snapshot(rig.database) == rows_before, "the SQL on stdout lost something"


# The grants the database component renders for its backup account are enough for a full dump.
def test_dump_works_with_the_database_components_grants(rig):
    from components.database import HookAccounts, render_accounts_hook

    hook = render_accounts_hook(HookAccounts(schema="emr", backup_user="backup_scoped"))
    grants = [line for line in hook.splitlines() if line.startswith("GRANT ")]
    rig.database.sql(
        "DROP USER IF EXISTS backup_scoped@'%';"
        f"CREATE USER backup_scoped@'%' IDENTIFIED BY {sql_string(BACKUP_PASSWORD)} REQUIRE SSL;"
        + "".join(grants)
    )
    rows_before = database_snapshot(rig.database)

    rig.backup(BACKUP_DB_USER="backup_scoped")
    [backup] = rig.backups()
    rig.database.sql("DROP DATABASE emr")
    restored = rig.restore(backup, "--skip-volumes")

    [entry] = [e for e in manifest_entries(backup) if e["kind"] == "database"]
    assert entry["source"] == "emr", f"the scoped account dumped {entry['source']}"
    assert database_snapshot(rig.database) == rows_before, "emr differs after the scoped dump"
    assert "the dump matches binary log mariadb-bin." in restored.stdout, (
        f"the scoped account's dump holds no binary log position: {restored.stdout}"
    )


def serve_until_waiting(rig, **overrides: str) -> list[str]:
    """Starts the scheduler, reads its log up to the line that says it waits for the next run
    (so everything it does at start is done), then stops it. Returns the log lines."""
    env = rig.env(BACKUP_DB_HOST="", **overrides)
    scheduler = subprocess.Popen(
        [str(BIN / "backup-scheduler"), "serve"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        for line in scheduler.stderr:
            lines.append(line)
            if "scheduler: waiting" in line:
                break
    finally:
        os.killpg(scheduler.pid, 15)
        scheduler.wait(timeout=30)
    assert any("scheduler: waiting" in line for line in lines), "".join(lines)
    return lines


# A scheduler that starts with no recent backup (fresh stack, or down at its hour) takes one.
def test_scheduler_catches_up_when_no_backup_is_within_the_rpo(rig):
    lines = serve_until_waiting(rig)

    assert any("taking one now" in line for line in lines), "".join(lines)
    assert len(rig.backups()) == 1, "no catch-up backup"
    assert healthcheck(rig).returncode == 0


# With a backup younger than the RPO, a restart takes none and waits for the schedule.
def test_scheduler_waits_when_the_last_backup_is_recent(rig):
    rig.backup(BACKUP_DB_HOST="")
    [first] = rig.backups()

    lines = serve_until_waiting(rig)

    assert rig.backups() == [first], "a restart took a backup although one is recent"
    assert not any("taking one now" in line for line in lines), "".join(lines)


# The scripts stay free of the shell pitfalls shellcheck knows (quoting, pipes, traps).
def test_scripts_are_shellcheck_clean():
    ensure_binaries()
    scripts = sorted(str(path) for path in BIN.iterdir())

    result = subprocess.run(
        ["shellcheck", "--external-sources", *scripts],
        cwd=BIN.parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout

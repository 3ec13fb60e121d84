"""What a restore refuses, and what it leaves alone when it fails: the backup job's lock, the
manifest's inventory, volume targets that do not exist or have no archive, and archives that
break mid-stream or overflow the disk (every volume and the database keep their content)."""

import fcntl
import shutil
from contextlib import ExitStack

import pytest
from backup_rig import (
    BIN,
    VOLUME_NAMES,
    database_snapshot,
    mounted,
    paused_run,
    read_only_view,
    resign_archive,
    rewrite_manifest,
    tree_snapshot,
    volume_snapshots,
    wipe,
)


def change_after_backup(rig) -> None:
    """Changes the database and every volume, so a restore that wrote anything would show."""
    rig.database.sql("INSERT INTO emr.patients (id, name) VALUES (999999, 'admitted later')")
    for name in VOLUME_NAMES:
        (rig.volumes / name / "written-after-the-backup").write_text("newer than the backup")


def state(rig) -> tuple:
    return database_snapshot(rig.database), volume_snapshots(rig)


def leftovers(rig) -> list[str]:
    return sorted(str(path) for path in rig.volumes.rglob(".restore-*"))


def verify_only(rig, backup, *extra: str):
    """The exported verify step's arguments: no volume targets, no database."""
    return rig.run(
        "restore",
        *("--identity", str(rig.keys.identity), *extra),
        *("--skip-database", "--skip-volumes", "--verify-only", str(backup)),
        check=False,
    )


# A restore never runs while a backup run holds the job's lock, even from a read-only mount of
# the destination as the runbook's one-off containers see it.
def test_restore_refuses_while_a_backup_run_holds_the_lock(rig, tmp_path):
    rig.backup()
    [backup] = rig.backups()
    change_after_backup(rig)
    before = state(rig)

    with (
        read_only_view(rig.dest, tmp_path / "archives") as archives,
        open(rig.dest / ".status" / "lock") as lock,
    ):
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused = rig.restore(archives / backup.name, check=False)
        fcntl.flock(lock, fcntl.LOCK_UN)
        verified = rig.restore(archives / backup.name, "--verify-only")

    assert refused.returncode != 0, "restore ran while a backup run held the job's lock"
    assert "a backup run holds" in refused.stderr, refused.stderr
    assert state(rig) == before, "a refused restore changed the database or a volume"
    assert "unlocked" not in verified.stdout, "the lock was not taken on a read-only mount"


# While a restore works, a backup run (and its prune) fails instead of archiving half-restored
# data or deleting the backup being read; the restore then completes.
def test_backup_run_fails_while_a_restore_holds_the_lock(rig, tmp_path):
    rig.backup()
    [backup] = rig.backups()

    command = [str(BIN / "restore"), *rig.restore_arguments(backup)]
    with paused_run(rig, tmp_path / "paused", command, "zstd", "--decompress") as (
        restore,
        paused,
    ):
        during = rig.run("backup", "run", check=False)
        paused.release()
        _, restore_errors = restore.communicate(timeout=300)

    assert during.returncode != 0, "a backup run overlapped a restore"
    assert "or a restore holds" in during.stderr, during.stderr
    assert rig.backups() == [backup], "a backup was published while a restore ran"
    assert restore.returncode == 0, restore_errors


# An archive removed together with its MANIFEST line, the end line recomputed, is still noticed:
# the inventory lists every archive the run wrote.
def test_archive_removed_with_its_line_is_refused_by_the_inventory(rig):
    rig.backup()
    [backup] = rig.backups()
    (backup / "volume-openemr-sites.tar.zst.age").unlink()
    rewrite_manifest(
        backup,
        lambda lines: [line for line in lines if "\tvolume-openemr-sites.tar.zst.age" not in line],
    )

    result = verify_only(rig, backup)

    assert result.returncode != 0, "a backup missing an archive and its line passed verification"
    assert "inventory expects the volume openemr-sites" in result.stderr, result.stderr


# A MANIFEST edited by hand (an archive, its line and its inventory line removed) no longer
# matches its end line and is refused.
def test_manifest_edited_without_its_end_line_is_refused(rig):
    rig.backup()
    [backup] = rig.backups()
    (backup / "volume-openemr-sites.tar.zst.age").unlink()
    lines = (backup / "MANIFEST").read_text().splitlines(keepends=True)
    (backup / "MANIFEST").write_text(
        "".join(line for line in lines if "volume-openemr-sites" not in line)
    )

    result = verify_only(rig, backup)

    assert result.returncode != 0, "a hand-edited MANIFEST passed verification"
    assert "does not match its end digest" in result.stderr, result.stderr


# A target that does not exist is refused before anything is written, and never created: in a
# one-off container it would be a path no volume backs.
def test_missing_volume_target_is_refused_and_not_created(rig):
    rig.backup()
    [backup] = rig.backups()
    change_after_backup(rig)
    shutil.rmtree(rig.volumes / "orthanc-storage")
    rows_before = database_snapshot(rig.database)
    others = [name for name in VOLUME_NAMES if name != "orthanc-storage"]
    files_before = {name: tree_snapshot(rig.volumes / name) for name in others}

    result = rig.restore(backup, check=False)

    assert result.returncode != 0, "restore went ahead without a target for orthanc-storage"
    assert "restore never creates one" in result.stderr, result.stderr
    assert not (rig.volumes / "orthanc-storage").exists(), "restore created the missing target"
    assert database_snapshot(rig.database) == rows_before, "the database was restored anyway"
    for name in others:
        assert tree_snapshot(rig.volumes / name) == files_before[name], f"{name} was restored"


# A target offered for a volume the backup holds no archive of is refused: it would stay as it is
# while the restore reports success.
@pytest.mark.parametrize("offer", ["directory under --volumes-root", "--volume"])
def test_target_without_an_archive_is_refused(rig, tmp_path, offer):
    rig.backup()
    [backup] = rig.backups()
    change_after_backup(rig)
    extra = []
    if offer == "--volume":
        (tmp_path / "reports").mkdir()
        extra = ["--volume", f"radiology-reports={tmp_path / 'reports'}"]
    else:
        (rig.volumes / "radiology-reports").mkdir()
    before = state(rig)

    result = rig.restore(backup, *extra, check=False)

    assert result.returncode != 0, f"a {offer} without an archive was accepted"
    assert "holds no archive of" in result.stderr and "radiology-reports" in result.stderr
    assert state(rig) == before, "a refused restore changed the database or a volume"


# With --require-mounts (the runbook's volumes step) a plain directory is refused and mount
# points are restored, their roots included.
def test_require_mounts_accepts_only_mount_points(rig):
    files_before = volume_snapshots(rig)
    rig.backup()
    [backup] = rig.backups()
    wipe(rig)

    plain = rig.restore(backup, "--require-mounts", check=False)
    with ExitStack() as mounts:
        for name in VOLUME_NAMES:
            mounts.enter_context(mounted(rig.volumes / name, "--bind", str(rig.volumes / name)))
        rig.restore(backup, "--require-mounts")
        files_after = volume_snapshots(rig)

    assert plain.returncode != 0, "--require-mounts accepted a directory that is no mount"
    assert "is not a mount point" in plain.stderr, plain.stderr
    assert files_after == files_before, "the mounted volumes differ after the restore"


# A manifest of format 1 (no inventory) is refused unless the operator accepts it as legacy.
def test_format_1_manifest_needs_the_legacy_option(rig):
    rig.backup()
    [backup] = rig.backups()
    lines = (backup / "MANIFEST").read_text().splitlines(keepends=True)
    (backup / "MANIFEST").write_text(
        "# hospital-backup manifest 1\n"
        + "".join(line for line in lines[1:] if not line.startswith(("# expect", "# end")))
    )

    refused = verify_only(rig, backup)
    accepted = verify_only(rig, backup, "--legacy-manifest")

    assert refused.returncode != 0, "a format 1 manifest was accepted without --legacy-manifest"
    assert "--legacy-manifest" in refused.stderr, refused.stderr
    assert accepted.returncode == 0, accepted.stderr
    assert "legacy" in accepted.stdout, accepted.stdout


# An archive cut short whose MANIFEST line was rewritten to match passes verification but breaks
# mid-extraction: no volume and not the database is touched, nothing staged is left behind.
def test_corrupt_volume_stream_leaves_everything_as_it_was(rig):
    rig.backup()
    [backup] = rig.backups()
    archive = backup / "volume-orthanc-storage.tar.zst.age"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    resign_archive(backup, archive.name)
    change_after_backup(rig)
    before = state(rig)

    result = rig.restore(backup, check=False)

    assert result.returncode != 0, "a cut archive was restored"
    assert "extracting volume orthanc-storage failed" in result.stderr, result.stderr
    assert state(rig) == before, "a failed restore changed the database or a volume"
    assert leftovers(rig) == [], "staged content was left in the volumes"


# A disk that fills up during extraction leaves the volume's current content in place.
def test_full_disk_during_extraction_keeps_the_current_content(rig):
    rig.backup()
    [backup] = rig.backups()
    change_after_backup(rig)
    target = rig.volumes / "orthanc-storage"

    with mounted(target, "-t", "tmpfs", "-o", "size=1m", "tmpfs"):
        (target / "current-study").mkdir()
        (target / "current-study" / "instance.dcm").write_bytes(b"DICM" * 50_000)
        before = state(rig)
        result = rig.restore(backup, check=False)
        after, left = state(rig), leftovers(rig)

    assert result.returncode != 0, "the restore did not notice the full disk"
    assert "extracting volume orthanc-storage failed" in result.stderr, result.stderr
    assert after == before, "a full disk cost the database or a volume its content"
    assert left == [], "staged content was left in the volumes"


# A dump cut short (its MANIFEST line rewritten to match) is found by decrypting it whole before
# the databases are dropped, on the direct path and before any SQL reaches stdout.
def test_cut_dump_is_found_before_the_database_is_dropped(rig):
    rig.backup()
    [backup] = rig.backups()
    dump = backup / "mariadb.sql.zst.age"
    dump.write_bytes(dump.read_bytes()[:-200])
    resign_archive(backup, dump.name)
    change_after_backup(rig)
    before = state(rig)

    direct = rig.restore(backup, check=False)
    piped = rig.run(
        "restore", "--identity", str(rig.keys.identity), "--sql-to-stdout", str(backup), check=False
    )

    assert direct.returncode != 0, "a cut dump was loaded"
    assert "does not decrypt whole" in direct.stderr, direct.stderr
    assert state(rig) == before, "a cut dump changed the database or a volume"
    assert piped.returncode != 0 and piped.stdout == "", "a cut dump's SQL reached stdout"

"""Point-in-time recovery: the dump notes the binary log position (file, offset, GTID) it matches
when the server keeps a binary log, and the restore says where to replay from."""

import os
import shutil


# The dump names the binary log file, offset and GTID its snapshot matches, and the restore
# reports them.
def test_dump_notes_the_binary_log_position_it_matches(rig):
    log_file, offset = rig.database.sql("SHOW MASTER STATUS").split("\t")[:2]
    gtid = rig.database.sql("SELECT @@gtid_binlog_pos").strip()
    rig.backup()
    [backup] = rig.backups()

    result = rig.run(
        "restore", "--identity", str(rig.keys.identity), "--sql-to-stdout", str(backup)
    )

    coordinates = f"-- CHANGE MASTER TO MASTER_LOG_FILE='{log_file}', MASTER_LOG_POS={offset};"
    assert coordinates in result.stdout, "the dump holds no binary log file and offset"
    assert f"-- SET GLOBAL gtid_slave_pos='{gtid}';" in result.stdout, "the dump holds no GTID"
    assert f"the dump matches binary log {log_file} at {offset} (GTID {gtid})" in result.stderr, (
        result.stderr
    )


# A server without a binary log is still dumped: the dump just notes no position, and says so.
def test_dump_from_a_server_without_binary_log_notes_no_position(rig, tmp_path):
    spy_dir = tmp_path / "spy"
    spy_dir.mkdir()
    (spy_dir / "mariadb").write_text(
        "#!/bin/bash\n"
        'if [[ " $* " == *" --execute=SELECT @@log_bin "* ]]; then echo 0; exit 0; fi\n'
        f'exec {shutil.which("mariadb")} "$@"\n'
    )
    (spy_dir / "mariadb").chmod(0o755)

    run = rig.run("backup", "run", env=rig.env(PATH=f"{spy_dir}:{os.environ['PATH']}"))
    [backup] = rig.backups()
    result = rig.run(
        "restore", "--identity", str(rig.keys.identity), "--sql-to-stdout", str(backup)
    )

    assert "binary logging is off" in run.stderr, run.stderr
    assert "CHANGE MASTER" not in result.stdout, "a position was noted without a binary log"
    assert "records no binary log position" in result.stderr, result.stderr

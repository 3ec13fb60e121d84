"""`make restore`, the command the README's runbook gives, reaches backup/restore_stack.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "restore", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
    )


# Without the backup and the identity it says how to call it, and does nothing.
def test_make_restore_without_backup_prints_its_usage():
    result = make("STACK=prod")

    assert result.returncode != 0
    assert "usage: make restore STACK=prod BACKUP=" in result.stderr, result.stderr
    assert "restore_stack.py" not in result.stdout, result.stdout


# With DRY_RUN it prints the stack's five steps in order, with the chosen backup and identity.
def test_make_restore_dry_run_prints_the_prod_steps(tmp_path):
    identity = tmp_path / "identity.txt"
    identity.write_text("AGE-SECRET-KEY-1 placeholder for a dry run\n")

    result = make("STACK=prod", "BACKUP=2026-12-03T020000Z", f"IDENTITY={identity}", "DRY_RUN=1")

    assert result.returncode == 0, result.stderr
    steps = [line.split(":", 1)[0] for line in result.stdout.splitlines() if ": " in line]
    assert steps == ["verify", "stop", "database", "volumes", "start"], result.stdout
    assert "/backups/2026-12-03T020000Z" in result.stdout
    assert f"{identity}:/run/identity:ro" in result.stdout
    assert "hospital-prod-database" in result.stdout

"""Restore a deployed stack from one backup: verify, stop the writers, reload the database,
restore the volumes, start the writers, with the commands the stack's `backup` export lists.

Run: python backup/restore_stack.py --stack prod --backup 2026-12-03T020000Z \
         --identity /media/offline/hospital-backup.key [--exports outputs.json] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BACKUP_NAME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z(-[0-9]+)?$")
ORDER = ("verify", "stop", "database", "volumes", "start")


def load_plan(stack: str, exports_file: Path | None) -> dict:
    """The `backup` export: from `pulumi stack output --json` saved to a file, or else from the
    offline preview of the stack file (the same names for a stack deployed from this commit)."""
    if exports_file is not None:
        exports = json.loads(exports_file.read_text())
        return exports.get("backup") or {}
    from tools.preview import run_program

    export = run_program(stack).exports.get("backup")
    return (export.value if export else None) or {}


def resolved(commands: dict, backup: str, identity: Path) -> dict:
    """The plan's commands with the chosen backup and identity in place of the placeholders."""
    from components.backup import BACKUP_PLACEHOLDER, DEST_PATH, IDENTITY_PLACEHOLDER

    def fill(argv: list[str]) -> list[str]:
        return [
            f"{DEST_PATH}/{backup}"
            if arg == BACKUP_PLACEHOLDER
            else arg.replace(IDENTITY_PLACEHOLDER, str(identity))
            for arg in argv
        ]

    filled = {}
    for step in ORDER:
        command = commands.get(step)
        if command and isinstance(command[0], list):
            filled[step] = [fill(part) for part in command]
        elif command:
            filled[step] = fill(command)
    return filled


# Limitation: the database and the volumes are separate steps (the database is loaded through
# its own container), so a volumes step that fails leaves the database restored and the volumes
# as they were; the services stay stopped, and the restore can be run again.
def run_step(step: str, command: list) -> None:
    """Runs one step; the database step pipes the verified SQL into the database container,
    whose client prints the tables and rows restored (the SQL ends with that query)."""
    print(f"== {step}", flush=True)
    if step != "database":
        subprocess.run(command, check=True)
        return
    producer = subprocess.Popen(command[0], stdout=subprocess.PIPE)
    consumer = subprocess.run(command[1], stdin=producer.stdout, check=False)
    producer.stdout.close()
    if producer.wait() != 0:
        raise subprocess.CalledProcessError(producer.returncode, command[0])
    if consumer.returncode != 0:
        raise subprocess.CalledProcessError(consumer.returncode, command[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="stack name, e.g. prod")
    parser.add_argument(
        "--backup", required=True, help="backup directory name, e.g. 2026-12-03T020000Z"
    )
    parser.add_argument("--identity", required=True, type=Path, help="age identity file")
    parser.add_argument("--exports", type=Path, help="`pulumi stack output --json` saved to a file")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    options = parser.parse_args(argv)

    if not BACKUP_NAME.match(options.backup):
        parser.error(f"--backup {options.backup!r} is not a backup directory name")
    identity = options.identity.resolve()
    if not identity.is_file():
        parser.error(f"--identity {identity} is not a file")
    plan = load_plan(options.stack, options.exports)
    if not plan.get("enabled") or "restoreCommands" not in plan:
        print(f"restore: stack {options.stack} runs no backup job", file=sys.stderr)
        return 1
    commands = resolved(plan["restoreCommands"], options.backup, identity)

    if options.dry_run:
        for step in ORDER:
            if step in commands:
                parts = commands[step] if step == "database" else [commands[step]]
                print(f"{step}: " + " | ".join(shlex.join(part) for part in parts))
        return 0
    try:
        for step in ORDER:
            if step in commands:
                run_step(step, commands[step])
    except subprocess.CalledProcessError as failure:
        stopped = "stop" in commands and step not in ("verify", "stop")
        print(
            f"restore: step '{step}' failed (status {failure.returncode})"
            + (
                "; the services and the backup job stay stopped until the restore succeeds"
                if stopped
                else ""
            ),
            file=sys.stderr,
        )
        return 1
    print(f"restore: stack {options.stack} restored from {options.backup}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

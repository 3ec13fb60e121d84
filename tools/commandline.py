"""What every `python -m tools` command shares: choosing a stack and running the preview.

A command module calls `add_stack_arguments(parser)` and then `recording_for(args)`.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from pulumi import RunError

from tools.preview import REPO_ROOT, PreviewFailed, run_program
from tools.recording import Recording
from tools.stack_config import StackConfigError


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """--stack, --stack-file, --secrets, --seed, --first-preview and --project-dir."""
    parser.add_argument("--stack", required=True, help="stack name, e.g. dev or prod")
    parser.add_argument(
        "--stack-file", type=Path, help="stack file to read instead of Pulumi.<stack>.yaml"
    )
    parser.add_argument(
        "--secrets",
        type=Path,
        help="YAML map of config key -> plaintext for values stored as `secure:`",
    )
    parser.add_argument("--seed", help="make generated passwords, ids and EC keys repeatable")
    parser.add_argument(
        "--first-preview",
        action="store_true",
        help="leave computed outputs unknown, as a first `pulumi preview` does",
    )
    parser.add_argument(
        "--project-dir", type=Path, default=REPO_ROOT, help="directory holding Pulumi.yaml"
    )


def recording_for(args: argparse.Namespace) -> Recording:
    """Run the program for the stack the arguments name (raises PreviewFailed)."""
    return run_program(
        args.stack,
        args.stack_file,
        project_dir=args.project_dir,
        secrets_file=args.secrets,
        seed=args.seed,
        unknown_computed=getattr(args, "first_preview", False),
    )


def report_failure(failure: PreviewFailed | StackConfigError) -> int:
    """Print a failed run's problems (never a traceback) to stderr; return the exit code."""
    if isinstance(failure, StackConfigError):
        print(f"error: {failure}", file=sys.stderr)
        return 2
    print(
        f"error: the program failed for stack {failure.recording.stack!r} "
        f"({type(failure.error).__name__}); nothing can be deployed:",
        file=sys.stderr,
    )
    for problem in failure.problems:
        print(f"  - {problem}", file=sys.stderr)
    if not isinstance(failure.error, RunError):
        # Not a reported problem but a bug: say where it happened, still without a traceback.
        frames = traceback.extract_tb(failure.error.__traceback__)
        if frames:
            innermost = frames[-1]
            print(
                f"  at {innermost.filename}:{innermost.lineno} in {innermost.name}", file=sys.stderr
            )
    return 1

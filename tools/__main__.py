"""`python -m tools COMMAND`: offline commands over the program's recorded preview.

To add a command, write tools/<name>.py with NAME, HELP, add_arguments(parser) and
run(args) -> exit code, and list the module in COMMANDS.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from tools import check, docs, plan, settings_reference
from tools.commandline import report_failure
from tools.preview import PreviewFailed
from tools.stack_config import StackConfigError

COMMANDS = (plan, check, docs, settings_reference)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools", description="Offline tools for the hospital Pulumi program."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command_parser = commands.add_parser(
            command.NAME, help=command.HELP, description=command.HELP
        )
        command.add_arguments(command_parser)
        command_parser.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The SDK's leftover futures of a failed run would print tracebacks; problems are
    # reported below instead.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        return int(args.run(args))
    except (PreviewFailed, StackConfigError) as failure:
        return report_failure(failure)


def close_event_loop() -> None:
    """Close the SDK's event loop before the interpreter tears down what its finalizer needs."""
    loop = asyncio.get_event_loop_policy().get_event_loop()
    if not loop.is_closed():
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


if __name__ == "__main__":
    exit_code = main()
    close_event_loop()
    sys.exit(exit_code)

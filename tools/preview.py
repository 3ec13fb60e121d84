"""Run the Pulumi program in-process under the SDK's mocks and return what it registered.

No engine is needed: a recording monitor and a provider stand-in take its place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import runpy
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from pulumi import RunError
from pulumi.runtime import rpc, settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.mocks import Mocks, set_mocks
from pulumi.runtime.stack import massage, run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from tools.monitor import RecordingMonitor, decode_wire
from tools.provider_standin import ProviderStandIn
from tools.recording import LogEntry, RecordedExport, RecordedResource, Recording
from tools.stack_config import StackConfig, load_stack_config

REPO_ROOT = Path(__file__).resolve().parent.parent


class PreviewFailed(Exception):
    """The program failed; `recording` holds whatever was registered before it did.

    :param error: the exception the program (or the stand-in provider) raised.
    :param recording: the partial recording, for asserting that nothing was created.
    """

    def __init__(self, error: BaseException, recording: Recording) -> None:
        super().__init__(f"preview of stack {recording.stack!r} failed: {error}")
        self.error = error
        self.recording = recording

    @property
    def problems(self) -> list[str]:
        """The error's own list of problems (a settings error carries one per key)."""
        problems = getattr(self.error, "problems", None)
        if problems:
            return [str(problem) for problem in problems]
        return [str(self.error) or type(self.error).__name__]


def run_program(
    stack: str,
    stack_file: Path | None = None,
    *,
    project_dir: Path = REPO_ROOT,
    preview: bool = True,
    secrets_file: Path | None = None,
    mocks: Mocks | None = None,
    seed: str | None = None,
    now: datetime | None = None,
    unknown_computed: bool = False,
) -> Recording:
    """Run `<project_dir>/__main__.py` for one stack and record every resource and export.

    :param stack: stack name, e.g. `dev`; the stack file defaults to `Pulumi.<stack>.yaml`.
    :param stack_file: another stack file to read instead (e.g. a mutated copy in a test).
    :param project_dir: the directory holding Pulumi.yaml and __main__.py.
    :param preview: True runs like `pulumi preview` (unreturned outputs are unknown).
    :param secrets_file: YAML map of config key -> plaintext for `secure:` values.
    :param mocks: a provider stand-in; defaults to ProviderStandIn(seed=seed, now=now).
    :param seed: makes passwords, ids and EC/Ed25519 keys repeatable.
    :param now: the clock certificates are issued at (default: the real time).
    :param unknown_computed: like a first `pulumi preview`: computed outputs are unknown,
        so inputs built from them are unknown too (needs preview=True).
    :raises PreviewFailed: when the program or the stand-in raised.

    Example::

        recording = run_program("dev")
        assert recording.of_type("docker:index/network:Network")
    """
    project_dir = Path(project_dir).resolve()
    stack_file = Path(stack_file) if stack_file else project_dir / f"Pulumi.{stack}.yaml"
    config = load_stack_config(project_dir, stack_file, secrets_file)
    stand_in = ProviderStandIn(seed=seed, now=now, unknown_computed=unknown_computed)
    monitor = RecordingMonitor(mocks or stand_in)
    logs: list[LogEntry] = []
    exports: dict[str, RecordedExport] = {}

    error: BaseException | None = None
    with _isolated_run(project_dir, config):
        set_mocks(
            monitor.mocks,
            project=config.project,
            stack=stack,
            preview=preview,
            logger=_capturing_logger(logs),
            monitor=monitor,
        )
        try:
            _run_main(project_dir / "__main__.py", exports)
        except Exception as failure:  # handed to the caller inside PreviewFailed
            error = failure

    recording = Recording(
        project=config.project,
        stack=stack,
        resources=_tree_order(_with_component_outputs(monitor)),
        exports=exports,
        logs=logs,
        config_secrets=config.secret_values,
    )
    if error is not None:
        raise PreviewFailed(error, recording) from error
    return recording


def _run_main(main_file: Path, exports: dict[str, RecordedExport]) -> None:
    """Run the program the way `pulumi.runtime.test` runs a test: one loop, wait for RPCs."""
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    loop = _ensure_event_loop()
    if loop.get_exception_handler() is not _quiet_reported_failures:
        loop.set_exception_handler(_quiet_reported_failures)

    async def program() -> None:
        runpy.run_path(str(main_file), run_name="__main__")
        exports.update(await _resolve_exports())

    _sync_await(run_pulumi_func(program))


def _quiet_reported_failures(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Drop asyncio's "exception was never retrieved" for errors a PreviewFailed reports.

    A failed registration leaves one rejected future per output property; each would
    print the same traceback again when collected.
    """
    message = str(context.get("message", ""))
    if "never retrieved" in message and isinstance(context.get("exception"), RunError):
        return
    loop.default_exception_handler(context)


async def _resolve_exports() -> dict[str, RecordedExport]:
    """Serialize the root stack's outputs as the engine would receive them, then decode."""
    root = settings.get_root_resource()
    outputs = getattr(root, "outputs", {}) or {}
    wire = await rpc.serialize_properties(massage(dict(outputs), []), {})
    secret_paths: set[str] = set()
    values = decode_wire(wire, "", secret_paths)
    exports = {}
    for name in outputs:
        relative = frozenset(
            "" if path == name else path[len(name) + 1 :]
            for path in secret_paths
            if path == name or path.startswith(name + ".")
        )
        exports[name] = RecordedExport(name, values.get(name), relative)
    return exports


@contextmanager
def _isolated_run(project_dir: Path, config: StackConfig) -> Iterator[None]:
    """Fresh config and root stack, no inherited PULUMI_CONFIG*, cwd and import path set.

    The language host runs a program from its project directory; so does this.
    """
    # Limitation: modules the program imports (components.*) stay in sys.modules between
    # runs, which keeps repeat runs fast; two projects with same-named packages therefore
    # cannot be previewed in one process.
    saved_env = {k: v for k, v in os.environ.items() if k.startswith("PULUMI_CONFIG")}
    for key in saved_env:
        del os.environ[key]
    saved_cwd = Path.cwd()
    added_path = str(project_dir) not in sys.path
    if added_path:
        sys.path.insert(0, str(project_dir))
    _ensure_event_loop()
    settings.ROOT.set(None)
    set_all_config(dict(config.values), sorted(config.secret_keys))
    os.chdir(project_dir)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        settings.ROOT.set(None)
        set_all_config({}, [])
        if added_path and str(project_dir) in sys.path:
            sys.path.remove(str(project_dir))
        os.environ.update(saved_env)


class _LogCollector(logging.Handler):
    def __init__(self, logs: list[LogEntry]) -> None:
        super().__init__(logging.DEBUG)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.INFO:
            self.logs.append(LogEntry(record.levelname.lower(), record.getMessage()))


def _capturing_logger(logs: list[LogEntry]) -> logging.Logger:
    """A private logger (not in logging's registry) that keeps `pulumi.log` messages."""
    logger = logging.Logger("tools.preview.engine", logging.DEBUG)
    logger.propagate = False
    logger.addHandler(_LogCollector(logs))
    return logger


def _with_component_outputs(monitor: RecordingMonitor) -> list[RecordedResource]:
    """Components report outputs after registering; fold those into their records."""
    merged = []
    for resource in monitor.recorded:
        registered = monitor.component_outputs.get(resource.urn)
        if registered is not None and not resource.custom:
            outputs, secret_paths = registered
            resource = dataclasses.replace(
                resource,
                outputs={**resource.outputs, **outputs},
                secret_outputs=resource.secret_outputs | secret_paths,
            )
        merged.append(resource)
    return merged


def _tree_order(resources: list[RecordedResource]) -> list[RecordedResource]:
    """Parent before children, siblings by type then name: stable across runs."""
    by_parent: dict[str | None, list[RecordedResource]] = {}
    known = {r.urn for r in resources}
    for resource in resources:
        parent = resource.parent if resource.parent in known else None
        by_parent.setdefault(parent, []).append(resource)

    ordered: list[RecordedResource] = []

    def visit(parent: str | None) -> None:
        for child in sorted(by_parent.get(parent, []), key=lambda r: (r.type, r.name)):
            ordered.append(child)
            visit(child.urn)

    visit(None)
    return ordered

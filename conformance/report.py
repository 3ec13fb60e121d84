"""The conformance run's numbers: what ran, what was skipped and why, and wall times cold and
warm, kept as JSON (build/conformance/summary.json) and shown as a one-screen summary."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
SUMMARY_PATH = REPOSITORY / "build" / "conformance" / "summary.json"
# Set by `make conformance` to the epoch second it began, so engine start-up counts too.
STARTED_VARIABLE = "CONFORMANCE_STARTED"


@dataclass
class RunReport:
    """Collected during one pytest session of the conformance suite.

    :param started: epoch seconds the run began (before the engine was started).
    :param images: one entry per stand-in image: tag, action (built/reused), seconds.
    :param stacks: per replayed stack: containers started, skipped (name, image, reason),
        deviations from the recording, seconds to bring each container up, total up seconds.
    """

    started: float
    engine_seconds: float = 0.0
    images: list[dict[str, Any]] = field(default_factory=list)
    stacks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_images(self, results: list[Any], seconds: float) -> None:
        self.images_seconds = round(seconds, 2)
        self.images = [
            {"tag": r.tag, "action": r.action, "seconds": round(r.seconds, 2)}
            for r in results
            if r.action != "absent"
        ]

    def add_stack(self, label: str, summary: dict[str, Any], up_seconds: float) -> None:
        self.stacks[label] = {**summary, "up_seconds": round(up_seconds, 2)}

    @property
    def mode(self) -> str:
        """cold: the Debian base (so every image) was built in this run; warm: every image was
        reused; rebuilt: only some stand-ins changed and were built."""
        actions = [i["action"] for i in self.images]
        if actions and actions[0] == "built":
            return "cold"
        return "rebuilt" if "built" in actions else "warm"

    def as_json(self, outcomes: dict[str, Any], finished: float) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished)),
            "commit": _commit(),
            "wall_seconds": round(finished - self.started, 1),
            "engine_seconds": round(self.engine_seconds, 2),
            "images_seconds": getattr(self, "images_seconds", 0.0),
            "images": self.images,
            "stacks": self.stacks,
            "tests": outcomes,
        }


def outcome_counts(stats: dict[str, list[Any]]) -> dict[str, Any]:
    """Counts of passed/failed/error/skipped tests, in total and per file, from pytest's
    terminal reporter (a failed setup or teardown counts as an error)."""
    totals: Counter[str] = Counter()
    by_file: dict[str, Counter[str]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in stats.get(outcome, []):
            if not getattr(report, "nodeid", ""):
                continue
            totals[outcome] += 1
            by_file.setdefault(report.nodeid.split("::")[0], Counter())[outcome] += 1
    return {**dict(totals), "by_file": {f: dict(c) for f, c in sorted(by_file.items())}}


def save(run: dict[str, Any], path: Path = SUMMARY_PATH) -> dict[str, Any]:
    """Write this run as `last` and as the latest of its mode, keeping the other mode's."""
    document: dict[str, Any] = {}
    if path.exists():
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError:
            document = {}
    document["last"] = run
    document[run["mode"]] = run
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return document


def render(document: dict[str, Any], path: Path = SUMMARY_PATH) -> list[str]:
    """The one-screen summary of the last run, with the latest cold and warm wall times."""
    run = document["last"]
    tests = run["tests"]
    counts = ", ".join(f"{tests.get(k, 0)} {k}" for k in ("passed", "failed", "error", "skipped"))
    lines = [f"conformance ({run['mode']}, commit {run['commit']}): {counts}"]
    for file, outcome in tests["by_file"].items():
        lines.append(f"  {file}: " + ", ".join(f"{n} {k}" for k, n in sorted(outcome.items())))
    images = ", ".join(f"{i['tag']} {i['action']} {i['seconds']:.0f}s" for i in run["images"])
    lines.append(f"images ({run['images_seconds']:.0f}s): {images or 'none'}")
    for label, stack in run["stacks"].items():
        lines.append(
            f"replayed {label}: up in {stack['up_seconds']:.0f}s, ran "
            + (", ".join(n for n in stack["started"] if n not in _skipped(stack)) or "nothing")
        )
        for skipped in stack["skipped"]:
            lines.append(f"  skipped {skipped['name']} ({skipped['image']}): {skipped['reason']}")
        for deviation in stack["deviations"]:
            lines.append(f"  deviation: {deviation}")
    for mode in ("cold", "warm"):
        measured = document.get(mode)
        figure = (
            f"{measured['wall_seconds']:.0f}s on {measured['finished']} ({measured['commit']})"
            if measured
            else "not measured on this machine yet"
        )
        lines.append(f"wall time {mode}: {figure}")
    lines.append(f"written to {path}")
    return lines


def _skipped(stack: dict[str, Any]) -> set[str]:
    return {s["name"] for s in stack["skipped"]}


def _commit() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"

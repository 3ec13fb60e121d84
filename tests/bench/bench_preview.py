"""Benchmark: how long the offline preview of each committed stack takes, and how the cost grows
with the number of DICOM modalities (each adds configuration, not resources).

Run: python tests/bench/bench_preview.py [--runs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tools.preview import run_program  # noqa: E402


def timed_runs(stack: str, runs: int, stack_file: Path | None = None) -> dict:
    seconds, resources = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        recording = run_program(stack, stack_file)
        seconds.append(time.perf_counter() - start)
        resources = len(recording.resources)
    return {
        "stack": stack,
        "resources": resources,
        "runs": runs,
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
    }


def with_modalities(count: int, directory: Path) -> Path:
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["hospital:pacs"]["modalities"] = {
        f"CT{index}": {"aet": f"CT{index}", "host": f"10.40.1.{index % 250 + 1}", "port": 104}
        for index in range(count)
    }
    path = directory / f"Pulumi.prod-{count}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    results = {"stacks": [timed_runs(stack, args.runs) for stack in ("dev", "prod")]}
    with tempfile.TemporaryDirectory() as directory:
        growth = []
        for count in (3, 30, 300):
            figures = timed_runs("prod", args.runs, with_modalities(count, Path(directory)))
            growth.append({"modalities": count, **figures})
        results["growth"] = growth

    for figures in results["stacks"]:
        print(
            f"preview {figures['stack']:>4}: {figures['resources']} resources, median "
            f"{figures['median_s'] * 1000:.0f} ms (min {figures['min_s'] * 1000:.0f}, "
            f"max {figures['max_s'] * 1000:.0f}) over {figures['runs']} runs"
        )
    base = results["growth"][0]["median_s"]
    for figures in results["growth"]:
        print(
            f"prod with {figures['modalities']:>3} modalities: median "
            f"{figures['median_s'] * 1000:.0f} ms ({figures['median_s'] / base:.2f}x of 3)"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

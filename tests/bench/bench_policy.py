"""Benchmark: how long the HIPAA policy check takes on the prod stack and on synthetic recordings
of up to 10,000 resources (the prod resources repeated; the trust-zone networks kept once).

Run: python tests/bench/bench_policy.py [--runs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tools.check import PACK_CONFIG_DIR, PackConfig, evaluate  # noqa: E402
from tools.preview import run_program  # noqa: E402
from tools.recording import Recording  # noqa: E402

NETWORK = "docker:index/network:Network"
SIZES = (1_000, 5_000, 10_000)


def synthetic(recording: Recording, size: int) -> Recording:
    """`recording` grown to `size` resources by repeating every resource except networks."""
    networks = [r for r in recording.resources if r.type == NETWORK]
    repeatable = [r for r in recording.resources if r.type != NETWORK]
    resources = list(networks)
    copy = 0
    while len(resources) < size:
        for resource in repeatable:
            if len(resources) >= size:
                break
            resources.append(
                dataclasses.replace(
                    resource, urn=f"{resource.urn}-{copy}", name=f"{resource.name}-{copy}"
                )
            )
        copy += 1
    return dataclasses.replace(recording, resources=resources)


def timed_checks(recording: Recording, config: PackConfig, runs: int) -> dict:
    seconds, violations = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        result = evaluate(recording, config)
        seconds.append(time.perf_counter() - start)
        violations = len(result.violations)
    return {
        "resources": len(recording.resources),
        "violations": violations,
        "runs": runs,
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    config = PackConfig.load(PACK_CONFIG_DIR / "prod.json")
    start = time.perf_counter()
    prod = run_program("prod")
    preview_s = time.perf_counter() - start

    results = {
        "prod": {**timed_checks(prod, config, args.runs), "preview_s": preview_s},
        "synthetic": [
            timed_checks(synthetic(prod, size), config, max(1, args.runs // 2)) for size in SIZES
        ],
    }

    figures = results["prod"]
    print(
        f"check prod: {figures['resources']} resources, median {figures['median_s'] * 1000:.1f} "
        f"ms (preview before it {figures['preview_s'] * 1000:.0f} ms) over {figures['runs']} runs"
    )
    for figures in results["synthetic"]:
        per_thousand = figures["median_s"] / figures["resources"] * 1000
        print(
            f"check synthetic {figures['resources']:>6} resources: median "
            f"{figures['median_s'] * 1000:.0f} ms ({per_thousand * 1000:.0f} ms per 1000)"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

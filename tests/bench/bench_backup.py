"""Backup job throughput: `backup run` on a generated volume against raw `tar | zstd` (and
`tar | zstd | age`) of the same data, the compression ratio, and the time of `restore`.

Run: python tests/bench/bench_backup.py [--megabytes 200] [--repeats 3] [--out result.json]
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "backup" / "bin"
VOLUME = "bench-volume"


def generate_volume(root: Path, megabytes: int, rng: random.Random) -> int:
    """Writes ~60 % incompressible files (like compressed DICOM pixel data) and ~40 %
    compressible ones (like reports and logs); returns the byte count."""
    volume = root / VOLUME
    incompressible = megabytes * 6 // 10 * 1024 * 1024
    compressible = megabytes * 1024 * 1024 - incompressible
    written = 0
    index = 0
    while written < incompressible:
        size = rng.choice([256 * 1024, 1024 * 1024, 4 * 1024 * 1024])
        folder = volume / "images" / f"{index % 16:02x}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"instance-{index}.dcm").write_bytes(os.urandom(size))
        written += size
        index += 1
    words = [
        "patient",
        "encounter",
        "blood",
        "pressure",
        "mmHg",
        "normal",
        "follow-up",
        "CT",
        "contrast",
        "finding",
        "no",
        "acute",
        "abnormality",
        "impression",
        "signed",
        "Dr.",
    ]
    corpus = "\n".join(
        f"{n:08d};{' '.join(rng.choices(words, k=rng.randint(4, 14)))};{rng.random():.6f}"
        for n in range(40_000)
    ).encode()
    done = 0
    while done < compressible:
        start = rng.randrange(0, len(corpus) // 2)
        chunk = corpus[start : start + rng.randint(64 * 1024, 2 * 1024 * 1024)]
        folder = volume / "documents" / f"{index % 8}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"report-{index}.txt").write_bytes(chunk)
        done += len(chunk)
        index += 1
    return written + done


def warm_cache(volume: Path) -> None:
    for path in volume.rglob("*"):
        if path.is_file():
            path.read_bytes()


def timed_shell(command: str) -> float:
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{command[0]} failed: {result.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200, help="size of the volume")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--level", type=int, default=3, help="zstd level for both paths")
    parser.add_argument("--threads", type=int, default=0, help="zstd threads (0 = per core)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    options = parser.parse_args()
    for tool in ("tar", "zstd", "age", "age-keygen", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install zstd age")

    scratch = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=options.workdir))
    try:
        sources, dest, restored = scratch / "volumes", scratch / "backups", scratch / "restored"
        for directory in (sources, dest, restored, restored / VOLUME):
            directory.mkdir()
        key = scratch / "bench.key"
        subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, check=True)
        recipient = subprocess.run(
            ["age-keygen", "-y", str(key)], capture_output=True, text=True, check=True
        ).stdout.strip()
        input_bytes = generate_volume(sources, options.megabytes, random.Random(7))
        warm_cache(sources / VOLUME)
        env = {
            "PATH": os.environ["PATH"],
            "TZ": "UTC",
            "BACKUP_DEST": str(dest),
            "BACKUP_SOURCE_ROOT": str(sources),
            "BACKUP_AGE_RECIPIENTS": recipient,
            "BACKUP_ZSTD_LEVEL": str(options.level),
            "BACKUP_ZSTD_THREADS": str(options.threads),
            "BACKUP_KEEP_DAILY": "1",
            "BACKUP_KEEP_WEEKLY": "0",
        }
        zstd = f"zstd -q -{options.level} -T{options.threads}"
        tar = f"tar -C {sources / VOLUME} --numeric-owner -cf - ."
        raw_file, age_file = scratch / "raw.tar.zst", scratch / "raw.tar.zst.age"

        raw, raw_age, raw_durable, backup, restore = [], [], [], [], []
        encrypt = f"{tar} | {zstd} | age -r {recipient} > {age_file}"
        for _ in range(options.repeats):
            raw.append(timed_shell(f"{tar} | {zstd} > {raw_file}"))
            raw_age.append(timed_shell(encrypt))
            # What the job adds on top: the SHA-256 read-back for the manifest and an fsync.
            raw_durable.append(
                timed_shell(f"{encrypt} && openssl dgst -sha256 {age_file} && sync {age_file}")
            )
            backup.append(timed([str(BIN / "backup"), "run"], env))
            [latest] = [p for p in dest.iterdir() if (p / "MANIFEST").is_file()]
            restore.append(
                timed(
                    [
                        str(BIN / "restore"),
                        "--identity",
                        str(key),
                        "--volume",
                        f"{VOLUME}={restored / VOLUME}",
                        str(latest),
                    ],
                    env,
                )
            )
        archive_bytes = (latest / f"volume-{VOLUME}.tar.zst.age").stat().st_size
        megabyte = 1024 * 1024

        def rate(seconds: list[float]) -> float:
            return round(input_bytes / megabyte / statistics.median(seconds), 1)

        figures = {
            "input_mb": round(input_bytes / megabyte, 1),
            "zstd_level": options.level,
            "zstd_threads": options.threads,
            "cores": os.cpu_count(),
            "repeats": options.repeats,
            "raw_tar_zstd_mb_s": rate(raw),
            "raw_tar_zstd_age_mb_s": rate(raw_age),
            "raw_age_sha256_fsync_mb_s": rate(raw_durable),
            "backup_mb_s": rate(backup),
            "backup_vs_raw": round(rate(backup) / rate(raw), 2),
            "compression_ratio": round(input_bytes / archive_bytes, 2),
            "backup_seconds": round(statistics.median(backup), 2),
            "restore_seconds": round(statistics.median(restore), 2),
            "restore_mb_s": rate(restore),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    for name, value in figures.items():
        print(f"{name:24} {value}")
    if options.out:
        options.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

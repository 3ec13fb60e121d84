"""Build the local stand-in images the conformance suite runs on, from Debian packages only.

Every image carries a label with the sha256 of its build inputs; an image whose label already
matches is not rebuilt. Run as `python -m conformance.build [--force] [--json PATH]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import docker
import docker.errors

REPOSITORY = Path(__file__).resolve().parent.parent
IMAGES_DIR = Path(__file__).resolve().parent / "images"
OUTPUT_DIR = Path(__file__).resolve().parent / "out"
INPUTS_LABEL = "hospital.conformance.inputs"
BASE_TAG = "local/debian:bookworm"
SUITE = "bookworm"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


@dataclass(frozen=True)
class StandIn:
    """A local image built FROM the Debian base: its tag and its build context."""

    tag: str
    context: Path


STAND_INS = (
    StandIn("local/orthanc", IMAGES_DIR / "orthanc"),
    StandIn("local/mariadb", IMAGES_DIR / "mariadb"),
    StandIn("local/nginx", IMAGES_DIR / "nginx"),
    # The backup job's own image; built only once its Dockerfile exists.
    StandIn("local/backup", REPOSITORY / "backup"),
)


@dataclass
class BuildResult:
    """What happened to one image: built or reused, how long it took, its inputs digest."""

    tag: str
    action: str  # built | reused | absent
    seconds: float
    inputs: str = ""
    size_mb: float = 0.0
    log: str = field(default="", repr=False)


def debian_archive_urls() -> tuple[str, str]:
    """The Debian archive and security archive this machine's apt uses (main suite first)."""
    archive, security = "", ""
    texts = []
    for source in APT_SOURCES:
        paths = sorted(source.glob("*.sources")) + sorted(source.glob("*.list"))
        texts += [p.read_text() for p in ([source] if source.is_file() else paths)]
    for url in re.findall(r"(?:URIs:|^deb)\s+(\S+)", "\n".join(texts), flags=re.MULTILINE):
        url = url.rstrip("/")
        if url.endswith("/debian-security") and not security:
            security = url
        elif url.endswith("/debian") and not archive:
            archive = url
    if not archive:
        raise SystemExit("build: no Debian archive found in this machine's apt sources")
    return archive, security


def base_sources_list() -> str:
    """apt sources for the images: the host's Debian archive, with updates and security."""
    archive, security = debian_archive_urls()
    lines = [f"deb {archive} {SUITE} main", f"deb {archive} {SUITE}-updates main"]
    if security:
        lines.append(f"deb {security} {SUITE}-security main")
    return "\n".join(lines) + "\n"


def inputs_digest(context: Path, *extra: str) -> str:
    """sha256 over every file of a build context (path, mode, content) plus extra strings."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(context)).encode() + b"\0")
        digest.update(b"x" if path.stat().st_mode & 0o111 else b"-")
        digest.update(path.read_bytes() + b"\0")
    for text in extra:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()


def image_inputs(client: docker.DockerClient, tag: str) -> str | None:
    """The inputs digest recorded on an existing image, or None when the image is absent."""
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    return (image.labels or {}).get(INPUTS_LABEL)


def image_size_mb(client: docker.DockerClient, tag: str) -> float:
    return round(client.images.get(tag).attrs["Size"] / 1e6, 1)


def build_base(client: docker.DockerClient, force: bool) -> BuildResult:
    """debootstrap a minimal bookworm and import it, with apt and dpkg set up for images."""
    started = time.monotonic()
    sources = base_sources_list()
    archive, _ = debian_archive_urls()
    wanted = inputs_digest(IMAGES_DIR / "debian", SUITE, "minbase", sources)
    if not force and image_inputs(client, BASE_TAG) == wanted:
        return BuildResult(BASE_TAG, "reused", time.monotonic() - started, wanted)

    root = Path(tempfile.mkdtemp(prefix="conformance-rootfs-", dir="/var/tmp"))
    try:
        subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(root), archive],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        _install(IMAGES_DIR / "debian" / "policy-rc.d", root / "usr/sbin/policy-rc.d", 0o755)
        _install(IMAGES_DIR / "debian" / "apt.conf", root / "etc/apt/apt.conf.d/90image")
        _install(IMAGES_DIR / "debian" / "dpkg.cfg", root / "etc/dpkg/dpkg.cfg.d/90image")
        (root / "etc/apt/sources.list").write_text(sources)
        for cache in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for leftover in (root / cache).glob("*"):
                if leftover.is_file():
                    leftover.unlink()

        changes = [
            f"LABEL {INPUTS_LABEL}={wanted}",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["bash"]',
        ]
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE
        )
        command = ["docker", "import"]
        for change in changes:
            command += ["--change", change]
        subprocess.run([*command, "-", BASE_TAG], stdin=tar.stdout, check=True, capture_output=True)
        if tar.wait() != 0:
            raise SystemExit("build: tar of the debootstrap root failed")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    seconds = time.monotonic() - started
    return BuildResult(BASE_TAG, "built", seconds, wanted, image_size_mb(client, BASE_TAG))


def _install(source: Path, target: Path, mode: int = 0o644) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(mode)


def build_stand_in(stand_in: StandIn, base_inputs: str, force: bool) -> BuildResult:
    """Build one image FROM the base with the legacy builder, unless its inputs are unchanged."""
    started = time.monotonic()
    if not (stand_in.context / "Dockerfile").exists():
        return BuildResult(stand_in.tag, "absent", 0.0)
    client = docker.from_env(timeout=900)
    wanted = inputs_digest(stand_in.context, base_inputs)
    if not force and image_inputs(client, stand_in.tag) == wanted:
        return BuildResult(stand_in.tag, "reused", time.monotonic() - started, wanted)

    lines: list[str] = []
    try:
        _, stream = client.images.build(
            path=str(stand_in.context),
            tag=stand_in.tag,
            buildargs={"BASE": BASE_TAG},
            labels={INPUTS_LABEL: wanted},
            rm=True,
            forcerm=True,
        )
        lines = [chunk.get("stream", "") for chunk in stream]
    except docker.errors.BuildError as error:
        lines = [chunk.get("stream", "") or chunk.get("error", "") for chunk in error.build_log]
        _write_log(stand_in.tag, lines)
        raise SystemExit(f"build: {stand_in.tag} failed: {error.msg}") from None
    _write_log(stand_in.tag, lines)
    seconds = time.monotonic() - started
    return BuildResult(stand_in.tag, "built", seconds, wanted, image_size_mb(client, stand_in.tag))


def _write_log(tag: str, lines: list[str]) -> None:
    OUTPUT_DIR.mkdir(exist_ok=True)
    name = tag.replace("/", "_").replace(":", "_")
    (OUTPUT_DIR / f"build-{name}.log").write_text("".join(lines))


def build_all(force: bool = False, parallel: int = 3) -> list[BuildResult]:
    """Base first, then every stand-in in parallel; returns one result per image."""
    client = docker.from_env(timeout=900)
    base = build_base(client, force)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(build_stand_in, s, base.inputs, force) for s in STAND_INS]
        return [base, *(future.result() for future in futures)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even unchanged images")
    parser.add_argument("--parallel", type=int, default=3, help="stand-ins built at once")
    parser.add_argument("--json", type=Path, help="write the timings to this JSON file")
    arguments = parser.parse_args(argv)

    started = time.monotonic()
    results = build_all(arguments.force, arguments.parallel)
    total = time.monotonic() - started

    for result in results:
        size = f"{result.size_mb:7.1f} MB" if result.size_mb else " " * 10
        print(f"{result.tag:24} {result.action:7} {result.seconds:7.1f} s {size}")
    print(f"{'total':24} {'':7} {total:7.1f} s")
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {
            "total_seconds": round(total, 2),
            "images": [
                {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(r).items()}
                for r in results
                if r.action != "absent" or r.tag
            ],
        }
        for image in summary["images"]:
            image.pop("log", None)
        arguments.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

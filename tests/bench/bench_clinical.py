"""Clinical path: the replayed prod stack against the plain Orthanc limit, on the same images.

Plain: the stand-in Orthanc image with its default configuration, TCP_NODELAY for its DICOM
toolkit and on the sending socket, direct HTTP without authentication. Prod: the offline
preview of the prod stack replayed on the engine; C-STORE from a configured modality's
address to Orthanc's DICOM port, REST through the TLS gateway verified against the generated
CA, with the generated credentials.

Proxy (REST only): a bare nginx TLS proxy, the same stand-in nginx image with a minimal
configuration (TLS, upstream keepalive, HTTP/1.1), in front of the plain Orthanc. prod/proxy
tells what the hardened gateway costs beyond TLS termination itself; proxy/plain what TLS and
the extra hop cost on this machine.

Measured, each repetition rotating which side goes first: C-STORE instances/s and MB/s of
small (~40 kB) and large (~0.5 MB) instances over 1 and 4 parallel associations; sequential
and 4-way parallel GET /instances/{id}/file (curl, one keep-alive connection per stream);
QIDO-RS study search latency; and the backup job's MB/s against raw `tar | zstd`
(bench_backup.py). Prints medians, min-max and prod/plain ratios against the targets below.

Run: python tests/bench/bench_clinical.py [--repeats 5] [--out FILE] [--no-backup]
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import multiprocessing
import os
import secrets
import shutil
import ssl
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import docker  # noqa: E402
import httpx  # noqa: E402
from pydicom import dcmwrite  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

import conformance.replay  # noqa: E402
from conformance import build  # noqa: E402
from conformance.dicom import sample_ct, store  # noqa: E402
from conformance.replay import Replay, plan_replay  # noqa: E402

DICOM_PORT = 4242
ORTHANC_HTTP_PORT = 8042
GATEWAY_HTTPS_PORT = 8443
PLAIN_IMAGE = "local/orthanc"
PROXY_IMAGE = "local/nginx"
PROXY_HOST_NAME = "pacs.bench.invalid"
# A reverse proxy as a tutorial would write it, plus upstream keepalive: the TLS baseline.
PROXY_CONF = """
pid /tmp/nginx.pid;
worker_processes auto;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    upstream orthanc {{ server {upstream}:8042; keepalive 16; }}
    server {{
        listen 8443 ssl;
        server_name {host_name};
        ssl_certificate /etc/nginx/bench.crt;
        ssl_certificate_key /etc/nginx/bench.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://orthanc;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
# Everything this bench creates carries this label instead of the replay's own: a conformance
# session removes every replay run when it ends (and fails on replays it did not start), so a
# bench sharing the engine with it must stay out of its sight; the bench removes its own run.
BENCH_LABEL = "hospital.bench.clinical"
conformance.replay.RUN_LABEL = BENCH_LABEL
MEGABYTE = 1024 * 1024
# A large instance: a 512 x 512 CT slice of 16-bit pixels (about 0.5 MB).
LARGE_SIDE = 512

# The clinical path's targets: (comparison, bound) on prod/plain of the median. Security must
# not slow imaging down: C-STORE at 0.9 of plain Orthanc, downloads through TLS at 0.8 of
# direct HTTP, queries within 1.1 of direct, backups at 0.8 of raw tar | zstd.
TARGETS = {
    "throughput": (">=", 0.9),
    "download": (">=", 0.8),
    "latency": ("<=", 1.1),
    "backup": (">=", 0.8),
}


@dataclass
class Side:
    """Where one side is reached: DICOM peer, REST base URL and the curl options it needs."""

    name: str
    dicom_host: str
    called: str
    rest_base: str
    curl_options: list[str] = field(default_factory=list)
    auth: tuple[str, str] | None = None
    host_name: str | None = None
    rest_address: str | None = None
    ca_file: str | None = None

    def http(self) -> httpx.Client:
        """A client for set-up requests (never timed)."""
        if self.ca_file:
            verify: Any = ssl.create_default_context(cafile=self.ca_file)
        else:
            verify = False
        return httpx.Client(verify=verify, auth=self.auth, timeout=60)

    def url(self, path: str) -> str:
        return self.rest_base + path

    def request(self, client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
        extensions = {"sni_hostname": self.host_name} if self.host_name else None
        headers = {"Host": self.host_name} if self.host_name else None
        base = f"https://{self.rest_address}:{GATEWAY_HTTPS_PORT}" if self.host_name else None
        url = (base + path) if base else self.url(path)
        response = client.request(method, url, headers=headers, extensions=extensions, **kwargs)
        response.raise_for_status()
        return response.json()


# ---------------------------------------------------------------- set-up of the two sides


def start_plain(client: docker.DockerClient, run: str) -> tuple[Side, list[Any]]:
    """The stand-in Orthanc with its defaults, TCP_NODELAY and the DICOMweb plugin switched on.

    Its storage is a named volume like prod's, so both write to the same kind of file system.
    """
    labels = {BENCH_LABEL: run}
    network = client.networks.create(f"bench-{run}-plain", driver="bridge", labels=labels)
    volume = client.volumes.create(f"bench-{run}-plain-storage", labels=labels)
    container = client.containers.run(
        PLAIN_IMAGE,
        name=f"bench-{run}-plain-orthanc",
        detach=True,
        labels=labels,
        network=network.name,
        environment={
            "TCP_NODELAY": "1",
            # The stand-in image, like the upstream one, enables authentication by default;
            # the limit to measure against is Orthanc without it.
            "ORTHANC__AUTHENTICATION_ENABLED": "false",
            "DICOM_WEB_PLUGIN_ENABLED": "true",
        },
        volumes={volume.name: {"bind": "/var/lib/orthanc/db", "mode": "rw"}},
    )
    created = [container, network, volume]
    container.reload()
    address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
    side = Side("plain", address, "ORTHANC", f"http://{address}:{ORTHANC_HTTP_PORT}")
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(side.url("/system"), timeout=2).status_code == 200:
                return side, created
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("plain Orthanc did not answer within 120 s")
        time.sleep(0.3)


def start_proxy(
    client: docker.DockerClient, run: str, plain: Side, network: Any, scratch: Path
) -> tuple[Side, Any]:
    """A bare nginx TLS proxy (PROXY_CONF) on the plain side's network, with a throw-away
    self-signed certificate for PROXY_HOST_NAME."""
    certificate, key = self_signed(PROXY_HOST_NAME)
    ca_file = scratch / "proxy-ca.pem"
    ca_file.write_text(certificate)
    container = client.containers.create(
        PROXY_IMAGE,
        name=f"bench-{run}-proxy",
        labels={BENCH_LABEL: run},
        network=network.name,
    )
    files = {
        "etc/nginx/nginx.conf": PROXY_CONF.format(
            upstream=plain.dicom_host, host_name=PROXY_HOST_NAME
        ),
        "etc/nginx/bench.crt": certificate,
        "etc/nginx/bench.key": key,
    }
    container.put_archive("/", tar_of(files))
    container.start()
    container.reload()
    address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
    side = Side(
        "proxy",
        plain.dicom_host,
        plain.called,
        f"https://{PROXY_HOST_NAME}:{GATEWAY_HTTPS_PORT}",
        curl_options=[
            "--cacert",
            str(ca_file),
            "--resolve",
            f"{PROXY_HOST_NAME}:{GATEWAY_HTTPS_PORT}:{address}",
        ],
        host_name=PROXY_HOST_NAME,
        rest_address=address,
        ca_file=str(ca_file),
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with side.http() as http:
                side.request(http, "GET", "/system")
            return side, container
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the bare TLS proxy did not answer within 60 s")
        time.sleep(0.3)


def self_signed(host_name: str) -> tuple[str, str]:
    """A P-256 certificate and key for `host_name`, valid for a day (PEM strings)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def tar_of(files: dict[str, str]) -> bytes:
    """An uncompressed tar archive of text files (path relative to / -> content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, text in files.items():
            data = text.encode()
            entry = tarfile.TarInfo(path)
            entry.size, entry.mode = len(data), 0o644
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def uploaded(recording: Any, service: str, path: str) -> str:
    for resource in recording.of_type("docker:index/container:Container"):
        labels = {item["label"]: item["value"] for item in resource.inputs.get("labels", [])}
        if labels.get("hospital.service") != service:
            continue
        for upload in resource.inputs.get("uploads", []):
            if upload["file"] == path:
                return upload["content"]
    raise KeyError(f"{service} gets no upload at {path}")


def start_prod(client: docker.DockerClient, scratch: Path) -> tuple[Side, Replay, dict]:
    """The prod stack replayed; returns the side, the replay and the modality used."""
    from tools.preview import run_program

    recording = run_program("prod", preview=False)
    replay = Replay(plan_replay(recording), client)
    replay.__enter__()
    try:
        return _prod_side(recording, replay, scratch)
    except BaseException:
        replay.down()
        raise


def _prod_side(recording: Any, replay: Replay, scratch: Path) -> tuple[Side, Replay, dict]:
    dicom = json.loads(uploaded(recording, "pacs", "/etc/orthanc/dicom.json"))
    users = json.loads(uploaded(recording, "pacs", "/etc/orthanc/credentials.json"))
    # The last storing modality: the conformance tests use the first one and add and remove
    # its address on their own, so the two never pull an address from under each other.
    modality = [m for _, m in sorted(dicom["DicomModalities"].items()) if m["AllowStore"]][-1]
    [authority] = recording.of_type("tls:index/selfSignedCert:SelfSignedCert")
    ca_file = scratch / "ca.pem"
    ca_file.write_text(authority.outputs["certPem"])
    host_name = recording.export("endpoints")["pacs"].split("//", 1)[1].split("/", 1)[0]
    host_name = host_name.split(":", 1)[0]
    gateway = replay.address(replay.by_service("gateway"))
    # DICOM goes to Orthanc's bridge address, REST to the gateway's: a port published on
    # 127.0.0.1 passes Docker's userland proxy, which hides the modality's address (prod
    # checks it) and copies every byte once more, whereas a deployed host's clients reach
    # the published ports through the kernel's NAT.
    base = f"https://{host_name}:{GATEWAY_HTTPS_PORT}"
    auth_file = scratch / "prod-auth.curl"
    password = users["RegisteredUsers"]["admin"]
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    auth_file.write_text(f'user = "admin:{quoted}"\n')
    auth_file.chmod(0o600)
    side = Side(
        "prod",
        replay.address(replay.by_service("pacs")),
        dicom["DicomAet"],
        base,
        curl_options=[
            "--cacert",
            str(ca_file),
            "--resolve",
            f"{host_name}:{GATEWAY_HTTPS_PORT}:{gateway}",
            "-K",
            str(auth_file),
        ],
        auth=("admin", password),
        host_name=host_name,
        rest_address=gateway,
        ca_file=str(ca_file),
    )
    return side, replay, modality


def add_host_address(address: str) -> bool:
    """Give this host the modality's address; True when this run added it (and removes it)."""
    shown = subprocess.run(
        ["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=True
    ).stdout
    if f" {address}/" in shown:
        return False
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    return True


# ---------------------------------------------------------------- C-STORE


def make_instance(large: bool, study: str, series: str, pixels: bytes | None) -> Any:
    dataset = sample_ct(study)
    dataset.SeriesInstanceUID = series
    if large:
        dataset.Rows = dataset.Columns = LARGE_SIDE
        dataset.PixelData = pixels
    return dataset


def encoded_size(dataset: Any) -> int:
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.tell()


def _store_worker(connection: Any, peer: tuple, large: bool, count: int, study: str) -> None:
    """One association in its own process: prepares its instances, waits for go, stores."""
    pixels = os.urandom(LARGE_SIDE * LARGE_SIDE * 2) if large else None
    series = generate_uid()
    datasets = [make_instance(large, study, series, pixels) for _ in range(count)]
    connection.send(sum(encoded_size(d) for d in datasets[:1]) * count)
    connection.recv()
    started = time.perf_counter()
    host, called, calling, source = peer
    outcome = store(host, DICOM_PORT, called, calling, datasets, source=source)
    connection.send((outcome.all_stored, time.perf_counter() - started))


def store_batch(side: Side, calling: str, source: str, large: bool, total: int, streams: int):
    """Stores `total` instances over `streams` parallel associations; (instances/s, MB/s)."""
    context = multiprocessing.get_context("fork")
    study = generate_uid()
    pipes, workers = [], []
    for index in range(streams):
        share = total // streams + (1 if index < total % streams else 0)
        parent, child = context.Pipe()
        peer = (side.dicom_host, side.called, calling, source)
        worker = context.Process(target=_store_worker, args=(child, peer, large, share, study))
        worker.start()
        pipes.append(parent)
        workers.append(worker)
    size = sum(pipe.recv() for pipe in pipes)
    started = time.perf_counter()
    for pipe in pipes:
        pipe.send("go")
    results = [pipe.recv() for pipe in pipes]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    if not all(stored for stored, _ in results):
        raise SystemExit(f"C-STORE to {side.name} failed ({'large' if large else 'small'})")
    return total / elapsed, size / MEGABYTE / elapsed, study


# ---------------------------------------------------------------- REST with curl


def curl_batch(side: Side, paths: list[str], parallel: int, scratch: Path) -> tuple:
    """GETs every path with one curl process (keep-alive; `parallel` streams).

    Returns (wall seconds, per-request seconds, bytes). curl keeps the client's own cost
    small and equal for both sides; the wall time includes its start (a few ms).
    """
    listing = scratch / f"urls-{secrets.token_hex(4)}.curl"
    listing.write_text(
        "".join(f'url = "{side.url(path)}"\noutput = "/dev/null"\n' for path in paths)
    )
    command = [
        "curl",
        "-sS",
        "--no-progress-meter",
        "--fail",
        *side.curl_options,
        "-K",
        str(listing),
    ]
    command += ["-w", "%{http_code} %{size_download} %{time_total}\\n"]
    if parallel > 1:
        command += ["--parallel", "--parallel-max", str(parallel)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    listing.unlink()
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or len(rows) != len(paths) or any(r[0] != "200" for r in rows):
        codes = sorted({r[0] for r in rows})
        raise SystemExit(f"curl to {side.name} failed: exit {result.returncode}, codes {codes}")
    return wall, [float(r[2]) for r in rows], sum(int(r[1]) for r in rows)


def instance_ids(side: Side, study: str) -> list[str]:
    with side.http() as client:
        found = side.request(
            client,
            "POST",
            "/tools/find",
            json={"Level": "Instance", "Query": {"StudyInstanceUID": study}},
        )
    return sorted(found)


# ---------------------------------------------------------------- figures


@dataclass
class Metric:
    name: str
    unit: str
    kind: str  # a key of TARGETS
    values: dict[str, list[float]] = field(
        default_factory=lambda: {"plain": [], "prod": [], "proxy": []}
    )

    def summary(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"unit": self.unit}
        for side, values in self.values.items():
            if not values:
                continue  # the bare proxy serves REST only
            figures[side] = {
                "median": round(statistics.median(values), 4),
                "min": round(min(values), 4),
                "max": round(max(values), 4),
                "runs": [round(v, 4) for v in values],
            }
        ratio = figures["prod"]["median"] / figures["plain"]["median"]
        comparison, bound = TARGETS[self.kind]
        figures["ratio"] = round(ratio, 3)
        figures["target"] = f"{comparison} {bound}"
        figures["met"] = ratio >= bound if comparison == ">=" else ratio <= bound
        if "proxy" in figures:
            figures["prod_vs_proxy"] = round(
                figures["prod"]["median"] / figures["proxy"]["median"], 3
            )
            figures["proxy_vs_plain"] = round(
                figures["proxy"]["median"] / figures["plain"]["median"], 3
            )
        return figures


def run_backup(repeats: int, megabytes: int, scratch: Path) -> dict[str, Any]:
    """bench_backup.py's measurement: the job's `backup run` against raw tar | zstd."""
    out = scratch / "backup.json"
    command = [sys.executable, str(Path(__file__).with_name("bench_backup.py"))]
    command += ["--repeats", str(repeats), "--megabytes", str(megabytes), "--out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    figures = json.loads(out.read_text())
    comparison, bound = TARGETS["backup"]
    return {
        "input_mb": figures["input_mb"],
        "raw_tar_zstd_mb_s": figures["raw_tar_zstd_mb_s"],
        "backup_mb_s": figures["backup_mb_s"],
        # What the job adds to raw tar | zstd, step by step, to tell where the gap comes from.
        "raw_tar_zstd_age_mb_s": figures["raw_tar_zstd_age_mb_s"],
        "raw_age_sha256_fsync_mb_s": figures["raw_age_sha256_fsync_mb_s"],
        "ratio": figures["backup_vs_raw"],
        "target": f"{comparison} {bound}",
        "met": figures["backup_vs_raw"] >= bound,
        "source": "tests/bench/bench_backup.py (backup/bin/backup run on the host)",
    }


def print_table(metrics: list[Metric], backup: dict[str, Any] | None) -> None:
    print(
        f"{'metric':40} {'plain median [min-max]':>26} {'prod median [min-max]':>26}  "
        f"{'prod/plain':24} {'bare TLS proxy':>14}  prod/proxy"
    )
    for metric in metrics:
        figures = metric.summary()
        cells = []
        for side in ("plain", "prod"):
            s = figures[side]
            cells.append(f"{s['median']:.4g} [{s['min']:.4g}-{s['max']:.4g}]")
        mark = "ok" if figures["met"] else "MISSED"
        verdict = f"{figures['ratio']:.2f} ({figures['target']}: {mark})"
        proxy = ""
        if "proxy" in figures:
            proxy = f"{figures['proxy']['median']:>14.4g}  {figures['prod_vs_proxy']:.2f}"
        print(f"{metric.name:40} {cells[0]:>26} {cells[1]:>26}  {verdict:24} {proxy}")
    if backup:
        mark = "ok" if backup["met"] else "MISSED"
        print(
            f"{'backup vs raw tar|zstd (MB/s)':40} {backup['raw_tar_zstd_mb_s']:>26} "
            f"{backup['backup_mb_s']:>26}  {backup['ratio']:.2f} ({backup['target']}: {mark})"
        )


# ---------------------------------------------------------------- the run


def measure(
    sides: dict[str, Side],
    calling: str,
    source: str,
    options: argparse.Namespace,
    scratch: Path,
) -> list[Metric]:
    metrics: dict[str, Metric] = {}

    def record(title: str, unit: str, kind: str, side: str, value: float) -> None:
        key = f"{title} ({unit})"
        metrics.setdefault(key, Metric(key, unit, kind)).values[side].append(value)

    def alternating(repetition: int, names: tuple[str, ...] = ("plain", "prod")) -> list[str]:
        """The sides in the order this repetition measures them: each goes first in turn."""
        shift = repetition % len(names)
        return [*names[shift:], *names[:shift]]

    scenarios = [
        ("small", False, options.small, 1),
        ("small", False, options.small, 4),
        ("large", True, options.large, 1),
        ("large", True, options.large, 4),
    ]
    studies: dict[tuple[str, str], str] = {}
    # Warm-up (not recorded): first associations, page cache, TLS sessions.
    for name in ("plain", "prod"):
        for _label, large, _, streams in scenarios:
            store_batch(sides[name], calling, source, large, 8, streams)
    for repetition in range(options.repeats):
        for label, large, count, streams in scenarios:
            for name in alternating(repetition):
                rate, mb_rate, study = store_batch(
                    sides[name], calling, source, large, count, streams
                )
                studies.setdefault((name, label), study)
                record(f"C-STORE {label} x{streams}", "instances/s", "throughput", name, rate)
                record(f"C-STORE {label} x{streams}", "MB/s", "throughput", name, mb_rate)
        print(f"C-STORE repetition {repetition + 1}/{options.repeats} done", file=sys.stderr)

    # Downloads of the instances stored in the first recorded repetition, same files each side.
    downloads: dict[tuple[str, str], list[str]] = {}
    for (name, label), study in studies.items():
        ids = instance_ids(sides[name], study)
        downloads[(name, label)] = [f"/instances/{i}/file" for i in ids]
    # The bare proxy fronts the plain Orthanc: it serves the plain side's instances.
    for label in ("small", "large"):
        downloads[("proxy", label)] = downloads[("plain", label)]
    studies[("proxy", "small")] = studies[("plain", "small")]
    qido = {
        name: [f"/dicom-web/studies?StudyInstanceUID={studies[(name, 'small')]}"] for name in sides
    }
    rest_sides = tuple(name for name in ("plain", "prod", "proxy") if name in sides)
    patient = "/dicom-web/studies?PatientName=Compressed*&limit=25"
    rest = [
        ("GET large file x1", "large", 1),
        ("GET large file x4", "large", 4),
        ("GET small file x1", "small", 1),
        ("GET small file x4", "small", 4),
    ]
    for name in rest_sides:
        curl_batch(sides[name], downloads[(name, "large")][:8], 1, scratch)
    for repetition in range(options.repeats):
        for title, label, streams in rest:
            for name in alternating(repetition, rest_sides):
                paths = downloads[(name, label)]
                paths = (paths * (options.downloads // len(paths) + 1))[: options.downloads]
                wall, each, size = curl_batch(sides[name], paths, streams, scratch)
                # Sequential: the sum of curl's per-request times leaves out its start-up.
                seconds = sum(each) if streams == 1 else wall
                record(title, "MB/s", "download", name, size / MEGABYTE / seconds)
                record(title, "requests/s", "download", name, len(paths) / seconds)
        for name in alternating(repetition, rest_sides):
            for title, paths in (
                ("QIDO-RS study by UID", qido[name]),
                ("QIDO-RS PatientName=Compressed*", [patient]),
            ):
                _, each, _ = curl_batch(sides[name], paths * options.queries, 1, scratch)
                # The first request of a curl process carries the TCP (and TLS) handshake.
                record(title, "ms", "latency", name, statistics.median(each[1:]) * 1000)
        print(f"REST repetition {repetition + 1}/{options.repeats} done", file=sys.stderr)
    return list(metrics.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repetitions per measurement")
    parser.add_argument("--small", type=int, default=300, help="small instances per batch")
    parser.add_argument("--large", type=int, default=100, help="large instances per batch")
    parser.add_argument("--downloads", type=int, default=200, help="GETs per batch")
    parser.add_argument("--queries", type=int, default=40, help="QIDO-RS requests per batch")
    parser.add_argument("--backup-megabytes", type=int, default=200)
    parser.add_argument("--no-backup", action="store_true", help="leave out the backup figures")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    options = parser.parse_args()
    for tool in ("curl", "ip"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing")

    subprocess.run([str(REPO / "conformance" / "engine.sh")], check=True, stdout=sys.stderr)
    build.build_all()
    client = docker.from_env(timeout=300)
    run = secrets.token_hex(3)
    scratch = Path(tempfile.mkdtemp(prefix="bench-clinical-"))
    created: list[Any] = []
    replay = None
    added_address = None
    try:
        plain, created = start_plain(client, run)
        proxy, proxy_container = start_proxy(client, run, plain, created[1], scratch)
        created.insert(0, proxy_container)
        prod, replay, modality = start_prod(client, scratch)
        if add_host_address(modality["Host"]):
            added_address = modality["Host"]
        started = time.perf_counter()
        sides = {"plain": plain, "prod": prod, "proxy": proxy}
        metrics = measure(sides, modality["AET"], modality["Host"], options, scratch)
        clinical_seconds = time.perf_counter() - started
        deviations = list(replay.deviations)
    finally:
        if added_address:
            subprocess.run(["ip", "addr", "del", f"{added_address}/32", "dev", "lo"], check=False)
        if replay is not None:
            replay.down()
        for item in created:
            item.remove(**({"force": True, "v": True} if hasattr(item, "kill") else {}))
        shutil.rmtree(scratch, ignore_errors=True)

    backup = None
    if not options.no_backup:
        backup_scratch = Path(tempfile.mkdtemp(prefix="bench-clinical-backup-"))
        try:
            backup = run_backup(options.repeats, options.backup_megabytes, backup_scratch)
        finally:
            shutil.rmtree(backup_scratch, ignore_errors=True)

    print_table(metrics, backup)
    load = os.getloadavg()
    figures = {
        "cores": os.cpu_count(),
        "load_average_after": [round(v, 2) for v in load],
        "note": "one client on the same host as the engine; other work may share the cores",
        "repeats": options.repeats,
        "batch": {
            "small_instances": options.small,
            "large_instances": options.large,
            "downloads": options.downloads,
            "queries": options.queries,
        },
        "clinical_seconds": round(clinical_seconds, 1),
        "paths": {
            "plain": "DICOM and HTTP to the Orthanc container's bridge address",
            "prod": "DICOM from the modality's address to Orthanc's bridge address; HTTPS "
            "(TLS verified, basic auth) to the gateway's edge address",
            "proxy": "HTTPS (TLS verified) to a bare nginx TLS proxy (TLS, keepalive, HTTP/1.1 "
            "upstream) in front of the plain Orthanc: REST only",
        },
        "replay_deviations": deviations,
        "metrics": {metric.name: metric.summary() for metric in metrics},
        "backup": backup,
    }
    if options.out:
        options.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

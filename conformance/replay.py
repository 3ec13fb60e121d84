"""Run the container specs an offline preview recorded on a real Docker engine.

Images are swapped through STAND_IN_IMAGES for the local stand-ins; every other recorded field
is applied as recorded, and a field this module does not understand is an error.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import secrets
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import docker.errors
import docker.types
from pulumi.runtime.rpc import UNKNOWN

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
BUILT_IMAGE = "docker:index/image:Image"
RUN_LABEL = "hospital.conformance.run"
SERVICE_LABEL = "hospital.service"
PLACEHOLDER_IMAGE = "local/debian:bookworm"
LOOPBACK = "127.0.0.1"
# A container restarted this often while waiting for health is failing, not starting slowly.
RESTART_LOOP = 3

# The one map from a recorded image reference to the local stand-in that replaces it.
STAND_IN_IMAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(docker\.io/)?(library/)?mariadb[:@]"), "local/mariadb"),
    (re.compile(r"^(docker\.io/)?orthancteam/orthanc[:@]"), "local/orthanc"),
    (re.compile(r"^(docker\.io/)?(library/)?nginx[:@]"), "local/nginx"),
    (re.compile(r"^(local/backup|([\w.-]+/)*hospital[-_/]backup)([:@]|$)"), "local/backup"),
)
# Images that cannot be obtained here: their containers are skipped by name, with the reason.
UNAVAILABLE_IMAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(docker\.io/)?openemr/openemr[:@]"), "no OpenEMR image is obtainable here"),
    (re.compile(r"velociraptor"), "no Velociraptor server image is obtainable here"),
)

# Recorded container fields that describe the Pulumi resource rather than the container.
RESOURCE_ONLY_FIELDS = frozenset(
    {
        "attach",
        "containerReadRefreshTimeoutMilliseconds",
        "destroyGraceSeconds",
        "logs",
        "mustRun",
        "removeVolumes",
        "rm",
        "start",
        "wait",
        "waitTimeout",
    }
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


class ReplayError(Exception):
    """The recording cannot be replayed faithfully, or the engine refused part of it."""


@dataclass(frozen=True)
class Skipped:
    """A recorded container that was not run, and why."""

    name: str
    image: str
    reason: str


@dataclass
class NetworkSpec:
    """A recorded network: its recorded name and the engine arguments."""

    recorded_name: str
    arguments: dict[str, Any]


@dataclass
class VolumeSpec:
    recorded_name: str
    arguments: dict[str, Any]


@dataclass
class Upload:
    """A file the recorded container gets before it starts."""

    path: str
    content: bytes
    mode: int


@dataclass
class Attachment:
    """One network a container joins, with its recorded aliases and address."""

    network: str
    aliases: list[str]
    ipv4_address: str | None = None


@dataclass
class ContainerSpec:
    """Everything needed to create one recorded container on the engine.

    :param recorded_name: the container name the program chose.
    :param urn: the recorded resource's URN, for dependency ordering.
    :param recorded_image: the image reference the program pinned.
    :param arguments: keyword arguments for `containers.create` (networks added at run time).
    :param attachments: the `networksAdvanced` networks in recorded order.
    :param network_mode: the recorded network named by `networkMode`; None for Docker's bridge.
    :param uploads: files written into the container before it starts.
    :param published: (internal port, protocol, recorded host address, recorded host port).
    :param wait_seconds: how long to wait for health after start; None when not waited for.
    :param depends_on: URNs of recorded containers that must run first.
    """

    recorded_name: str
    urn: str
    recorded_image: str
    arguments: dict[str, Any]
    attachments: list[Attachment]
    uploads: list[Upload] = field(default_factory=list)
    published: list[tuple[int, str, str, int | None]] = field(default_factory=list)
    wait_seconds: float | None = None
    start: bool = True
    depends_on: set[str] = field(default_factory=set)
    placeholder: bool = False
    network_mode: str | None = None


@dataclass
class ReplayPlan:
    """What a recording turns into: networks, volumes, containers in start order, skips."""

    stack: str
    networks: list[NetworkSpec]
    volumes: list[VolumeSpec]
    containers: list[ContainerSpec]
    skipped: list[Skipped]


def stand_in_for(reference: str) -> str | None:
    """The local image replacing `reference`; None when it cannot be obtained here."""
    for pattern, local in STAND_IN_IMAGES:
        if pattern.search(reference):
            return local
    for pattern, _ in UNAVAILABLE_IMAGES:
        if pattern.search(reference):
            return None
    raise ReplayError(f"image {reference!r} has no stand-in and is not known to be unavailable")


def unavailable_reason(reference: str) -> str:
    for pattern, reason in UNAVAILABLE_IMAGES:
        if pattern.search(reference):
            return reason
    return "no stand-in"


def duration_ns(text: str, where: str) -> int:
    """A Go duration such as `1m30s` in nanoseconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(a + u for a, u in parts) != text:
        raise ReplayError(f"{where}: {text!r} is not a duration such as 30s or 1m30s")
    return int(sum(float(amount) * _DURATION_NS[unit] for amount, unit in parts))


def _labels(items: Iterable[Mapping[str, Any]] | None, where: str) -> dict[str, str]:
    labels = {}
    for item in items or ():
        _only(item, {"label", "value"}, where)
        labels[item["label"]] = item["value"]
    return labels


def _only(mapping: Mapping[str, Any], understood: Iterable[str], where: str) -> None:
    """Refuse any key of `mapping` that the replay would otherwise drop."""
    unknown = sorted(set(mapping) - set(understood))
    if unknown:
        raise ReplayError(f"{where}: recorded field(s) {', '.join(unknown)} not understood")


def _present(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs that carry a value (the recorder may keep unset inputs as None)."""
    return {k: v for k, v in inputs.items() if v is not None and v != [] and v != {}}


class _RecordingIndex:
    """Look-ups the plan needs across resources: images, networks, volumes, containers."""

    def __init__(self, resources: list[Any]) -> None:
        self.resources = resources
        self.images: dict[str, str] = {}
        for resource in resources:
            if resource.type == REMOTE_IMAGE:
                name = resource.inputs["name"]
                digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
                for key in {digest, resource.outputs.get("imageId"), resource.outputs.get("id")}:
                    if key:
                        self.images[key] = name
            elif resource.type == BUILT_IMAGE:
                name = resource.inputs.get("imageName") or resource.outputs.get("imageName")
                for key in (resource.outputs.get("imageName"), resource.outputs.get("repoDigest")):
                    if key:
                        self.images[key] = name
        self.networks = {r.inputs.get("name") or r.name: r for r in resources if r.type == NETWORK}
        self.volumes = {r.inputs.get("name") or r.name: r for r in resources if r.type == VOLUME}
        self.containers = {r.urn: r for r in resources if r.type == CONTAINER}
        self.by_urn = {r.urn: r for r in resources}
        self.children: dict[str, list[Any]] = {}
        for resource in resources:
            if resource.parent:
                self.children.setdefault(resource.parent, []).append(resource)

    def image_of(self, container: Any) -> str:
        reference = container.inputs.get("image", "")
        if reference in self.images:
            return self.images[reference]
        if reference and not reference.startswith("sha256:"):
            return reference
        raise ReplayError(f"container {container.name}: image {reference!r} matches no image")

    def network_name(self, recorded: str, where: str) -> str:
        if recorded in self.networks:
            return recorded
        for name, resource in self.networks.items():
            if recorded in (resource.outputs.get("id"), resource.id):
                return name
        raise ReplayError(f"{where}: network {recorded!r} is not a recorded network")

    def containers_below(self, urn: str) -> set[str]:
        """The container URNs a dependency on `urn` waits for (a component: its subtree)."""
        if urn in self.containers:
            return {urn}
        found: set[str] = set()
        for child in self.children.get(urn, []):
            found |= self.containers_below(child.urn)
        return found


def plan_replay(recording: Any) -> ReplayPlan:
    """Translate a recording into engine arguments, refusing any field it cannot apply."""
    index = _RecordingIndex(list(recording.resources))
    networks = [_network_spec(r) for r in recording.resources if r.type == NETWORK]
    volumes = [_volume_spec(r) for r in recording.resources if r.type == VOLUME]

    containers: list[ContainerSpec] = []
    skipped: list[Skipped] = []
    for resource in (r for r in recording.resources if r.type == CONTAINER):
        reference = index.image_of(resource)
        local = stand_in_for(reference)
        spec = _container_spec(resource, index, local or PLACEHOLDER_IMAGE, reference)
        if local is None:
            skipped.append(Skipped(spec.recorded_name, reference, unavailable_reason(reference)))
            spec = _placeholder(spec)
        containers.append(spec)
    return ReplayPlan(recording.stack, networks, volumes, _start_order(containers), skipped)


def _network_spec(resource: Any) -> NetworkSpec:
    where = f"network {resource.name}"
    inputs = _present(resource.inputs)
    _only(
        inputs,
        {"name", "internal", "ipamConfigs", "labels", "driver", "options", "attachable"},
        where,
    )
    pools = []
    for pool in inputs.get("ipamConfigs", []):
        _only(pool, {"subnet", "gateway", "ipRange", "auxAddress"}, f"{where} ipamConfigs")
        pools.append(
            docker.types.IPAMPool(
                subnet=pool.get("subnet"),
                gateway=pool.get("gateway"),
                iprange=pool.get("ipRange"),
                aux_addresses=pool.get("auxAddress"),
            )
        )
    arguments = {
        "driver": inputs.get("driver", "bridge"),
        "internal": bool(inputs.get("internal", False)),
        "labels": _labels(inputs.get("labels"), f"{where} labels"),
        "options": inputs.get("options"),
        "attachable": inputs.get("attachable"),
        "ipam": docker.types.IPAMConfig(pool_configs=pools) if pools else None,
    }
    return NetworkSpec(inputs.get("name", resource.name), arguments)


def _volume_spec(resource: Any) -> VolumeSpec:
    where = f"volume {resource.name}"
    inputs = _present(resource.inputs)
    _only(inputs, {"name", "labels", "driver", "driverOpts"}, where)
    arguments = {
        "driver": inputs.get("driver", "local"),
        "driver_opts": inputs.get("driverOpts"),
        "labels": _labels(inputs.get("labels"), f"{where} labels"),
    }
    return VolumeSpec(inputs.get("name", resource.name), arguments)


# Each handler applies one recorded container field to the engine arguments.
Handler = Callable[[Any, ContainerSpec, str, "_RecordingIndex"], None]


def _set(name: str, convert: Callable[[Any], Any] = lambda v: v) -> Handler:
    def apply(value: Any, spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
        spec.arguments[name] = convert(value)

    return apply


def _ignore(value: Any, spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    """Fields already applied elsewhere (name, image, network mode)."""


def _envs(value: list[str], spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    for line in value:
        if "=" not in line:
            raise ReplayError(f"{where} envs: an entry has no '=' (expected KEY=value)")
    spec.arguments["environment"] = list(value)


def _uploads(value: list[dict], spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    for item in value:
        _only(item, {"file", "content", "contentBase64", "executable", "permissions"}, where)
        if "content" in item:
            content = item["content"].encode()
        elif "contentBase64" in item:
            content = base64.b64decode(item["contentBase64"])
        else:
            raise ReplayError(f"{where} uploads {item['file']}: no content (source unsupported)")
        # pulumi-docker writes 0644, 0744 when executable; `permissions` wins when given.
        mode = 0o744 if item.get("executable") else 0o644
        if item.get("permissions"):
            mode = int(item["permissions"], 8)
        spec.uploads.append(Upload(item["file"], content, mode))


def _volumes(value: list[dict], spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    binds = spec.arguments.setdefault("volumes", {})
    for item in value:
        _only(
            item,
            {"volumeName", "hostPath", "containerPath", "readOnly", "fromContainer"},
            f"{where} volumes",
        )
        if "fromContainer" in item:
            # Passed through as written, as the provider does (`readOnly` does not apply).
            name, _, mode = item["fromContainer"].rpartition(":")
            if mode not in ("ro", "rw"):
                name, mode = item["fromContainer"], ""
            spec.arguments.setdefault("volumes_from", []).append((name, mode))
            continue
        if "volumeName" not in item and "hostPath" not in item:
            # Only a path: an anonymous volume, filled with the image's files at that path. The
            # provider declares it in the container config (`Volumes`); a volume mount without a
            # source is the same to the engine, copy of the image's files included.
            spec.arguments.setdefault("anonymous_volumes", []).append(item["containerPath"])
            continue
        if "volumeName" in item:
            if item["volumeName"] not in index.volumes:
                raise ReplayError(
                    f"{where} volumes: {item['volumeName']!r} is not a recorded volume"
                )
            source = ("volume", item["volumeName"])
        else:
            source = ("host", item["hostPath"])
        binds[source] = {
            "bind": item["containerPath"],
            "mode": "ro" if item.get("readOnly") else "rw",
        }


def _mounts(value: list[dict], spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    mounts = spec.arguments.setdefault("mounts", [])
    for item in value:
        _only(
            item,
            {"target", "type", "source", "readOnly", "tmpfsOptions", "bindOptions"},
            f"{where} mounts",
        )
        tmpfs = item.get("tmpfsOptions") or {}
        _only(tmpfs, {"sizeBytes", "mode"}, f"{where} mounts tmpfsOptions")
        bind = item.get("bindOptions") or {}
        _only(bind, {"propagation"}, f"{where} mounts bindOptions")
        if item["type"] == "volume" and item.get("source") not in index.volumes:
            raise ReplayError(f"{where} mounts: {item.get('source')!r} is not a recorded volume")
        mounts.append(
            {
                "target": item["target"],
                "type": item["type"],
                "source": item.get("source"),
                "read_only": bool(item.get("readOnly")),
                "tmpfs_size": tmpfs.get("sizeBytes"),
                "tmpfs_mode": tmpfs.get("mode"),
                "propagation": bind.get("propagation"),
            }
        )


def _networks(value: list[dict], spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    for item in value:
        _only(item, {"name", "aliases", "ipv4Address"}, f"{where} networksAdvanced")
        network = index.network_name(item["name"], f"{where} networksAdvanced")
        aliases = list(item.get("aliases") or [])
        # The engine resolves a container by its name too; the replay renames containers,
        # so the recorded name is kept as an alias to resolve exactly as after `pulumi up`.
        if spec.recorded_name not in aliases:
            aliases.append(spec.recorded_name)
        spec.attachments.append(Attachment(network, aliases, item.get("ipv4Address")))


def _ports(value: list[dict], spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    for item in value:
        _only(item, {"internal", "external", "ip", "protocol"}, f"{where} ports")
        protocol = item.get("protocol", "tcp")
        external = int(item["external"]) if item.get("external") is not None else None
        spec.published.append((int(item["internal"]), protocol, item.get("ip"), external))


def _healthcheck(value: dict, spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    where = f"{where} healthcheck"
    _only(value, {"tests", "interval", "timeout", "retries", "startPeriod"}, where)
    check: dict[str, Any] = {"test": list(value["tests"])}
    for recorded, engine in (
        ("interval", "interval"),
        ("timeout", "timeout"),
        ("startPeriod", "start_period"),
    ):
        if value.get(recorded):
            check[engine] = duration_ns(value[recorded], f"{where} {recorded}")
    if value.get("retries") is not None:
        check["retries"] = int(value["retries"])
    spec.arguments["healthcheck"] = check


def _capabilities(value: dict, spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    _only(value, {"adds", "drops"}, f"{where} capabilities")
    if value.get("adds"):
        spec.arguments["cap_add"] = list(value["adds"])
    if value.get("drops"):
        spec.arguments["cap_drop"] = list(value["drops"])


def _restart(value: str, spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    policy = spec.arguments.setdefault("restart_policy", {})
    policy["Name"] = "" if value == "no" else value


def _max_retry(value: int, spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    spec.arguments.setdefault("restart_policy", {})["MaximumRetryCount"] = int(value)


def _log_driver(value: str, spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    spec.arguments.setdefault("log_config", {"Type": value, "Config": {}})["Type"] = value


def _log_opts(value: dict, spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    config = spec.arguments.setdefault("log_config", {"Type": "json-file", "Config": {}})
    config["Config"] = {k: str(v) for k, v in value.items()}


def _ulimits(value: list[dict], spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    limits = []
    for item in value:
        _only(item, {"name", "soft", "hard"}, f"{where} ulimits")
        limits.append(
            docker.types.Ulimit(name=item["name"], soft=int(item["soft"]), hard=int(item["hard"]))
        )
    spec.arguments["ulimits"] = limits


def _hosts(value: list[dict], spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    for item in value:
        _only(item, {"host", "ip"}, f"{where} hosts")
    spec.arguments["extra_hosts"] = {item["host"]: item["ip"] for item in value}


def _network_mode(value: str, spec: ContainerSpec, where: str, index: _RecordingIndex) -> None:
    if value in ("bridge", "default"):
        return
    if value == "none":
        spec.arguments["network_mode"] = "none"
        return
    if value in index.networks:
        spec.network_mode = value
        return
    raise ReplayError(f"{where} networkMode: {value!r} cannot be replayed in isolation")


def _megabytes(value: int) -> str:
    return f"{int(value)}m"


CONTAINER_FIELDS: dict[str, Handler] = {
    "name": _ignore,
    "image": _ignore,
    "networkMode": _network_mode,
    "envs": _envs,
    "command": _set("command", list),
    "entrypoints": _set("entrypoint", list),
    "user": _set("user"),
    "workingDir": _set("working_dir"),
    "hostname": _set("hostname"),
    "domainname": _set("domainname"),
    "init": _set("init", bool),
    "tty": _set("tty", bool),
    "stdinOpen": _set("stdin_open", bool),
    "readOnly": _set("read_only", bool),
    "tmpfs": _set("tmpfs", dict),
    "uploads": _uploads,
    "volumes": _volumes,
    "mounts": _mounts,
    "networksAdvanced": _networks,
    "ports": _ports,
    "healthcheck": _healthcheck,
    "capabilities": _capabilities,
    "securityOpts": _set("security_opt", list),
    "privileged": _set("privileged", bool),
    "restart": _restart,
    "maxRetryCount": _max_retry,
    "memory": _set("mem_limit", _megabytes),
    "memorySwap": _set("memswap_limit", lambda v: -1 if int(v) < 0 else _megabytes(v)),
    "shmSize": _set("shm_size", _megabytes),
    "cpuShares": _set("cpu_shares", int),
    "cpuSet": _set("cpuset_cpus"),
    "logDriver": _log_driver,
    "logOpts": _log_opts,
    "labels": _set("labels", lambda v: _labels(v, "labels")),
    "ulimits": _ulimits,
    "sysctls": _set("sysctls", dict),
    "dns": _set("dns", list),
    "dnsOpts": _set("dns_opt", list),
    "dnsSearches": _set("dns_search", list),
    "hosts": _hosts,
    "groupAdds": _set("group_add", list),
    "stopSignal": _set("stop_signal"),
    "stopTimeout": _set("stop_timeout", int),
    "pidMode": _set("pid_mode"),
    "ipcMode": _set("ipc_mode"),
}


def _container_spec(
    resource: Any, index: _RecordingIndex, image: str, reference: str
) -> ContainerSpec:
    inputs = _present(resource.inputs)
    name = inputs.get("name", resource.name)
    where = f"container {name}"
    spec = ContainerSpec(name, resource.urn, reference, {"image": image}, [])

    unknown = sorted(set(inputs) - set(CONTAINER_FIELDS) - RESOURCE_ONLY_FIELDS)
    if unknown:
        raise ReplayError(f"{where}: recorded field(s) {', '.join(unknown)} not understood")
    for key, value in inputs.items():
        if isinstance(value, str) and value == UNKNOWN:
            raise ReplayError(f"{where} {key}: value unknown at preview time")
        if key in CONTAINER_FIELDS:
            CONTAINER_FIELDS[key](value, spec, where, index)

    if inputs.get("wait"):
        spec.wait_seconds = float(inputs.get("waitTimeout", 60))
    spec.start = inputs.get("start", True) is not False
    for dependency in resource.dependencies:
        spec.depends_on |= index.containers_below(dependency)
    spec.depends_on.discard(resource.urn)
    return spec


def _placeholder(spec: ContainerSpec) -> ContainerSpec:
    """Stand in for a skipped container only on the network: same names, no service."""
    arguments = {
        "image": PLACEHOLDER_IMAGE,
        "command": ["sleep", "infinity"],
        "hostname": spec.arguments.get("hostname"),
        "labels": spec.arguments.get("labels", {}),
        "init": True,
    }
    return ContainerSpec(
        spec.recorded_name,
        spec.urn,
        spec.recorded_image,
        arguments,
        spec.attachments,
        depends_on=set(),
        placeholder=True,
        network_mode=spec.network_mode,
    )


def _start_order(containers: list[ContainerSpec]) -> list[ContainerSpec]:
    """Dependencies first; recorded order breaks ties. A cycle is an error."""
    by_urn = {c.urn: c for c in containers}
    ordered: list[ContainerSpec] = []
    state: dict[str, str] = {}

    def visit(spec: ContainerSpec, trail: tuple[str, ...]) -> None:
        if state.get(spec.urn) == "done":
            return
        if state.get(spec.urn) == "visiting":
            raise ReplayError(f"dependency cycle: {' -> '.join((*trail, spec.recorded_name))}")
        state[spec.urn] = "visiting"
        for urn in sorted(spec.depends_on, key=list(by_urn).index):
            visit(by_urn[urn], (*trail, spec.recorded_name))
        state[spec.urn] = "done"
        ordered.append(spec)

    for spec in containers:
        visit(spec, ())
    return ordered


class Replay:
    """Networks, volumes and containers of one plan on the engine, under a per-run prefix.

    :param plan: from `plan_replay(recording)`.
    :param client: a docker SDK client (default: from the environment).
    :param run_id: distinguishes parallel runs; random when not given.
    :param strict_uploads: True writes uploads exactly as pulumi-docker does (an archive
        extracted at / before start), which the engine refuses for a read-only root file
        system; False bind-mounts those files read-only instead and lists the deviation.
    :param subnet_fallback: when a recorded subnet is taken (a parallel run) and no container
        pins an address in it, let the engine pick one and list the deviation.

    Example::

        with Replay(plan_replay(recording)) as replay:
            host, port = replay.host_port("hospital-prod-pacs", 4242)
    """

    def __init__(
        self,
        plan: ReplayPlan,
        client: docker.DockerClient | None = None,
        run_id: str | None = None,
        strict_uploads: bool = True,
        subnet_fallback: bool = True,
    ) -> None:
        self.plan = plan
        self.subnet_fallback = subnet_fallback
        self.client = client or docker.from_env(timeout=300)
        self.run_id = run_id or secrets.token_hex(3)
        self.prefix = f"cf{self.run_id}-"
        self.strict_uploads = strict_uploads
        self.deviations: list[str] = []
        self.started: list[str] = []
        self.timings: dict[str, float] = {}
        self._containers: dict[str, Any] = {}
        self._host_dir = Path(tempfile.mkdtemp(prefix=f"conformance-{self.run_id}-"))

    @property
    def skipped(self) -> list[Skipped]:
        return self.plan.skipped

    def engine_name(self, recorded_name: str) -> str:
        return self.prefix + recorded_name

    def __enter__(self) -> Replay:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    def up(self) -> None:
        """Create networks and volumes, then each container in order, waiting where recorded."""
        labels = {RUN_LABEL: self.run_id}
        for network in self.plan.networks:
            self._create_network(network, labels)
        for volume in self.plan.volumes:
            arguments = {k: v for k, v in volume.arguments.items() if v is not None}
            arguments["labels"] = {**arguments.get("labels", {}), **labels}
            self._engine(
                f"volume {volume.recorded_name}",
                self.client.volumes.create,
                name=self.engine_name(volume.recorded_name),
                **arguments,
            )
        for spec in self.plan.containers:
            started = time.monotonic()
            self._run(spec)
            self.timings[spec.recorded_name] = round(time.monotonic() - started, 2)

    def _create_network(self, network: NetworkSpec, labels: dict[str, str]) -> None:
        """Create with the recorded subnet; when another run holds that subnet and no
        container pins an address on it, let the engine choose one and note the deviation."""
        arguments = {k: v for k, v in network.arguments.items() if v is not None}
        arguments["labels"] = {**arguments.get("labels", {}), **labels}
        name = self.engine_name(network.recorded_name)
        try:
            self.client.networks.create(name, check_duplicate=True, **arguments)
            return
        except docker.errors.APIError as error:
            overlap = "overlaps" in str(error.explanation)
            pinned = any(
                a.ipv4_address
                for c in self.plan.containers
                for a in c.attachments
                if a.network == network.recorded_name
            )
            if not overlap or pinned or not self.subnet_fallback:
                raise ReplayError(
                    f"network {network.recorded_name}: the engine refused it: {error.explanation}"
                ) from None
        arguments.pop("ipam", None)
        self._engine(
            f"network {network.recorded_name}", self.client.networks.create, name, **arguments
        )
        self.deviations.append(
            f"network {network.recorded_name}: recorded subnet in use by another run; "
            "the engine chose one"
        )

    def _run(self, spec: ContainerSpec) -> None:
        where = f"container {spec.recorded_name}"
        arguments = self._engine_arguments(spec)
        # As the docker provider creates a container: on its network mode (Docker's bridge when
        # none is set) with no endpoint settings, then, when networksAdvanced is given, off the
        # bridge and onto each listed network with its aliases. Joining the network-mode network
        # again keeps the endpoint made at create: aliases listed for it are lost, as after a
        # real `pulumi up`.
        if spec.network_mode is not None:
            arguments["network"] = self.engine_name(spec.network_mode)
        container = self._engine(
            where,
            self.client.containers.create,
            name=self.engine_name(spec.recorded_name),
            **arguments,
        )
        self._containers[spec.recorded_name] = container
        if spec.attachments and spec.network_mode is None:
            bridge = self.client.networks.get("bridge")
            self._engine(f"{where} leaving the default bridge", bridge.disconnect, container)
        for attachment in spec.attachments:
            network = self.client.networks.get(self.engine_name(attachment.network))
            self._engine(
                f"{where} joining {attachment.network}",
                network.connect,
                container,
                aliases=attachment.aliases,
                ipv4_address=attachment.ipv4_address,
            )
        if spec.uploads and (self.strict_uploads or not spec.arguments.get("read_only")):
            self._upload(spec, container)
        if not spec.start:
            return
        self._engine(f"{where} start", container.start)
        self.started.append(spec.recorded_name)
        if spec.wait_seconds is not None and not spec.placeholder:
            self.wait_healthy(spec.recorded_name, spec.wait_seconds)

    def _engine_arguments(self, spec: ContainerSpec) -> dict[str, Any]:
        arguments = dict(spec.arguments)
        arguments["labels"] = {**arguments.get("labels", {}), RUN_LABEL: self.run_id}
        volumes = {}
        for (kind, source), bind in arguments.pop("volumes", {}).items():
            if kind == "volume":
                volumes[self.engine_name(source)] = bind
            else:
                local = self._host_dir / "host" / source.lstrip("/")
                local.mkdir(parents=True, exist_ok=True)
                volumes[str(local)] = bind
                self.deviations.append(
                    f"{spec.recorded_name}: host path {source} bound from {local} instead"
                )
        mounts = [
            docker.types.Mount(path, None, type="volume")
            for path in arguments.pop("anonymous_volumes", [])
        ]
        volumes_from = [
            self.engine_name(name) + (f":{mode}" if mode else "")
            for name, mode in arguments.pop("volumes_from", [])
        ]
        if volumes_from:
            arguments["volumes_from"] = volumes_from
        for mount in arguments.pop("mounts", []):
            source = mount["source"]
            if mount["type"] == "volume":
                source = self.engine_name(source)
            mounts.append(docker.types.Mount(**{**mount, "source": source}))
        if spec.uploads and arguments.get("read_only") and not self.strict_uploads:
            for upload in spec.uploads:
                mounts.append(self._bound_upload(spec, upload))
        if volumes:
            arguments["volumes"] = volumes
        if mounts:
            arguments["mounts"] = mounts
        arguments["ports"] = {
            f"{internal}/{protocol}": (LOOPBACK, None)
            for internal, protocol, _, _ in spec.published
        }
        return arguments

    def _bound_upload(self, spec: ContainerSpec, upload: Upload) -> docker.types.Mount:
        local = self._host_dir / "uploads" / spec.recorded_name / upload.path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(upload.content)
        local.chmod(upload.mode)
        self.deviations.append(
            f"{spec.recorded_name}: {upload.path} bind-mounted read-only (the engine refuses "
            "uploads into a read-only root file system)"
        )
        return docker.types.Mount(upload.path, str(local), type="bind", read_only=True)

    def _upload(self, spec: ContainerSpec, container: Any) -> None:
        """Write the uploads the way pulumi-docker does: one archive extracted at /."""
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for upload in spec.uploads:
                member = tarfile.TarInfo(str(PurePosixPath(upload.path)).lstrip("/"))
                member.size = len(upload.content)
                member.mode = upload.mode
                member.mtime = int(time.time())
                tar.addfile(member, io.BytesIO(upload.content))
        self._engine(
            f"container {spec.recorded_name} uploads",
            container.put_archive,
            "/",
            archive.getvalue(),
        )

    def _engine(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except docker.errors.APIError as error:
            raise ReplayError(f"{what}: the engine refused it: {error.explanation}") from None

    def container(self, recorded_name: str) -> Any:
        """The engine's container for a recorded container name, freshly inspected."""
        container = self._containers[recorded_name]
        container.reload()
        return container

    def by_service(self, service: str) -> str:
        """The recorded container name whose `hospital.service` label is `service` and that
        starts (its file carrier, which never starts, carries the same label)."""
        for spec in self.plan.containers:
            if spec.start and spec.arguments.get("labels", {}).get(SERVICE_LABEL) == service:
                return spec.recorded_name
        raise KeyError(f"no recorded container has {SERVICE_LABEL}={service}")

    def host_port(self, recorded_name: str, internal: int, protocol: str = "tcp") -> tuple:
        """(address, port) the engine published `internal` on, read back from the engine."""
        ports = self.container(recorded_name).attrs["NetworkSettings"]["Ports"]
        bindings = ports.get(f"{internal}/{protocol}") or []
        if not bindings:
            raise ReplayError(f"container {recorded_name}: {internal}/{protocol} not published")
        return bindings[0]["HostIp"], int(bindings[0]["HostPort"])

    def address(self, recorded_name: str, network: str | None = None) -> str:
        """The container's IPv4 address on a recorded network (its first one by default)."""
        spec = next(s for s in self.plan.containers if s.recorded_name == recorded_name)
        network = network or spec.attachments[0].network
        attached = self.container(recorded_name).attrs["NetworkSettings"]["Networks"]
        return attached[self.engine_name(network)]["IPAddress"]

    def volume_name(self, recorded_name: str) -> str:
        """The engine's name of a recorded volume."""
        if recorded_name not in {v.recorded_name for v in self.plan.volumes}:
            raise KeyError(f"{recorded_name} is not a recorded volume")
        return self.engine_name(recorded_name)

    def engine_command(self, argv: Iterable[str]) -> list[str]:
        """A docker CLI command the program exports (a restore step, say) in this run's names.

        Recorded container names and volume names (alone or as the source of `NAME:/path`)
        get the run's prefix and a recorded image reference its stand-in; the rest is kept.
        """
        containers = {c.recorded_name for c in self.plan.containers}
        volumes = {v.recorded_name for v in self.plan.volumes}
        translated = []
        for argument in argv:
            source, colon, rest = argument.partition(":")
            if argument in containers or argument in volumes:
                argument = self.engine_name(argument)
            elif colon and source in volumes and rest.startswith("/"):
                argument = f"{self.engine_name(source)}:{rest}"
            else:
                argument = next(
                    (local for pattern, local in STAND_IN_IMAGES if pattern.search(argument)),
                    argument,
                )
            translated.append(argument)
        return translated

    def _restart_count(self, recorded_name: str) -> int:
        return int(self.container(recorded_name).attrs.get("RestartCount", 0))

    def health(self, recorded_name: str) -> str:
        state = self.container(recorded_name).attrs["State"]
        if not state.get("Running"):
            return "exited"
        return state.get("Health", {}).get("Status", "none")

    def wait_healthy(self, recorded_name: str, timeout: float) -> float:
        """Poll the engine until the container is healthy; ReplayError with its logs if not."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            status = self.health(recorded_name)
            if status == "healthy":
                return time.monotonic() - started
            if status == "exited" or self._restart_count(recorded_name) >= RESTART_LOOP:
                break
            time.sleep(0.2)
        container = self.container(recorded_name)
        tail = container.logs(tail=30).decode(errors="replace")
        state = container.attrs["State"]
        probe = (state.get("Health") or {}).get("Log") or [{}]
        raise ReplayError(
            f"container {recorded_name} not healthy after {time.monotonic() - started:.0f}s "
            f"(status {state.get('Status')}, exit {state.get('ExitCode')}); last probe: "
            f"{probe[-1].get('Output', '').strip()[:300]!r}; log tail:\n{tail}"
        )

    def down(self) -> None:
        """Remove every container, network and volume this run created."""
        remove_run(self.client, self.run_id)
        shutil.rmtree(self._host_dir, ignore_errors=True)

    def summary(self) -> dict[str, Any]:
        return {
            "stack": self.plan.stack,
            "run": self.run_id,
            "started": list(self.started),
            "skipped": [vars(s) for s in self.plan.skipped],
            "deviations": list(self.deviations),
            "seconds": dict(self.timings),
        }


def remove_run(client: docker.DockerClient, run_id: str | None = None) -> int:
    """Remove what a run (or, without run_id, every replay run) created; returns the count."""
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    removed = 0
    for container in client.containers.list(all=True, filters={"label": selector}):
        container.remove(force=True, v=True)
        removed += 1
    for network in client.networks.list(filters={"label": selector}):
        network.remove()
        removed += 1
    for volume in client.volumes.list(filters={"label": selector}):
        volume.remove(force=True)
        removed += 1
    return removed


def replay_stack(stack: str, strict_uploads: bool = True, run_id: str | None = None) -> Replay:
    """Run the program offline for `stack` and return a Replay of it, not yet started."""
    from tools.preview import run_program

    return Replay(
        plan_replay(run_program(stack, preview=False)), run_id=run_id, strict_uploads=strict_uploads
    )


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Replay a stack's recorded containers.")
    parser.add_argument("--stack", default="prod")
    parser.add_argument(
        "--keep", action="store_true", help="leave it running; remove later with --remove RUN"
    )
    parser.add_argument("--remove", metavar="RUN", help="remove what run RUN created")
    parser.add_argument(
        "--lenient-uploads",
        action="store_true",
        help="bind-mount uploads of read-only containers instead of failing",
    )
    arguments = parser.parse_args(argv)

    if arguments.remove:
        print(f"removed {remove_run(docker.from_env(), arguments.remove)} objects")
        return 0
    replay = replay_stack(arguments.stack, strict_uploads=not arguments.lenient_uploads)
    try:
        replay.up()
    except ReplayError as error:
        print(f"replay of {arguments.stack} failed: {error}")
        replay.down()
        return 1
    print(json.dumps(replay.summary(), indent=2))
    if not arguments.keep:
        replay.down()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())

"""Runtime hardening of containers: the CIS Docker Benchmark section 5 items and log rotation.

Inputs are read with the docker provider's defaults (privileged false, restart "no",
readOnly false, networkMode "bridge"), so a key left out is judged as the engine would see it.
"""

from collections.abc import Mapping
from pathlib import PurePosixPath

from pulumi_policy import Severity

from .framework import (
    CONTAINER,
    VOLUME,
    carrier_name,
    carriers_by_name,
    is_file_carrier,
    resource_policy,
    schema,
    setting,
    stack_policy,
    volumes_from,
)
from .inputs import (
    SERVICE_LABEL,
    every_item,
    known_items,
    label,
    mapping,
    require_known,
    sequence,
    service,
)

ACCESS_CONTROL = "164.312(a)(1)"
INTEGRITY = "164.312(c)(1)"
AUDIT = "164.312(b)"
ACTIVITY_REVIEW = "164.308(a)(1)(ii)(D)"
CONTINGENCY = "164.308(a)(7)(ii)(B)"

HOST_NAMESPACE_INPUTS = ("networkMode", "pidMode", "ipcMode", "usernsMode")
UNCONFINED_OPTIONS = {
    "apparmor=unconfined",
    "apparmor:unconfined",
    "seccomp=unconfined",
    "seccomp:unconfined",
    "label=disable",
    "label:disable",
}
NO_NEW_PRIVILEGES_OPTIONS = {
    "no-new-privileges",
    "no-new-privileges:true",
    "no-new-privileges=true",
}
SOCKET_SUFFIXES = ("docker.sock", "containerd.sock", "podman.sock")
# Mount options of the local volume driver that make a named volume a bind of `device`.
BIND_OPTIONS = {"bind", "rbind"}
# `local` rotates on its own; the others ship logs to a collector that keeps and rotates them.
ROTATING_DRIVERS = {"local", "journald", "syslog", "fluentd", "gelf", "awslogs", "splunk"}
SIZE_UNITS = {"k": 1 / 1024, "m": 1, "g": 1024}


def bind_device(driver: str, options) -> str | None:
    """The host path a volume of `driver` with `options` (driverOpts) binds, None when it binds
    none: the local driver with `o` holding bind or rbind mounts `device` from the host."""
    if driver != "local":
        return None  # a plugin's options mean what the plugin says, not host paths
    mount_options = {option.strip() for option in str(options.get("o", "")).split(",")}
    if not mount_options & BIND_OPTIONS or not options.get("device"):
        return None
    return str(options["device"])


def host_paths(props) -> list[str]:
    """Host paths a container binds: `volumes[].hostPath`, bind `mounts[].source`, and the
    device of a volume mount whose `volumeOptions` bind a host path.

    Named volumes (`volumeName`, a volume mount's `source`) are judged as Volume resources.
    """
    paths = []
    for volume in known_items(sequence(props, "volumes")):
        if volume.get("hostPath"):
            paths.append(str(volume["hostPath"]))
    for mount in known_items(sequence(props, "mounts")):
        kind = mount.get("type", "volume")
        if kind == "bind" and mount.get("source"):
            paths.append(str(mount["source"]))
        options = mapping(mount, "volumeOptions")
        device = bind_device(
            str(options.get("driverName", "local")), mapping(options, "driverOptions")
        )
        if kind == "volume" and device:
            paths.append(device)
    return paths


def is_runtime_socket(path: str) -> bool:
    return path.rstrip("/").endswith(SOCKET_SUFFIXES)


def is_sensitive(path: str, sensitive: list[str]) -> bool:
    """True for the host root and for `sensitive` directories and anything below them."""
    clean = "/" + path.strip("/")
    return clean == "/" or any(clean == root or clean.startswith(root + "/") for root in sensitive)


def capability(name: str) -> str:
    return name.upper().removeprefix("CAP_")


def validate_privileged(args, report_violation):
    if args.props.get("privileged", False):
        report_violation(
            f"Container '{args.name}' runs privileged; remove `privileged` and add only the "
            "capabilities it needs."
        )


CAPABILITIES_SCHEMA = schema(
    allowedCapabilities={
        "type": "array",
        "items": {"type": "string"},
        "default": [
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "FSETID",
            "KILL",
            "SETGID",
            "SETUID",
            "NET_BIND_SERVICE",
        ],
        "description": "Capabilities any container may add back after dropping ALL.",
    },
    serviceCapabilities={
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "default": {},
        "description": "Reviewed exceptions: service label -> extra capabilities it may add.",
    },
)


def validate_capabilities(args, report_violation):
    capabilities = mapping(args.props, "capabilities")
    drops = sequence(capabilities, "drops")
    if "ALL" not in {capability(name) for name in known_items(drops)}:
        require_known(drops)
        report_violation(
            f"Container '{args.name}' keeps the default capability set; set "
            "`capabilities.drops=['ALL']` and add back only what it needs."
        )
    allowed = {
        capability(name) for name in setting(args, CAPABILITIES_SCHEMA, "allowedCapabilities")
    }
    extra = [
        capability(name)
        for name in known_items(sequence(capabilities, "adds"))
        if capability(name) not in allowed
    ]
    if not extra:
        return
    exceptions = setting(args, CAPABILITIES_SCHEMA, "serviceCapabilities")
    reviewed = {capability(name) for name in exceptions.get(service(args.props) or "", [])}
    for name in extra:
        if name not in reviewed:
            report_violation(
                f"Container '{args.name}' adds capability {name}, which is not in the allowed "
                "list; remove it or allow it in the pack config."
            )


def validate_no_new_privileges(args, report_violation):
    options = sequence(args.props, "securityOpts")
    if not {str(option) for option in known_items(options)} & NO_NEW_PRIVILEGES_OPTIONS:
        require_known(options)
        report_violation(
            f"Container '{args.name}' lets processes gain privileges; add "
            "`no-new-privileges:true` to `securityOpts`."
        )


def validate_confinement(args, report_violation):
    for option in known_items(sequence(args.props, "securityOpts")):
        if str(option).replace(" ", "") in UNCONFINED_OPTIONS:
            report_violation(
                f"Container '{args.name}' disables a confinement profile ({option}); remove it "
                "from `securityOpts`."
            )


def validate_docker_socket(args, report_violation):
    for path in host_paths(args.props):
        if is_runtime_socket(path):
            report_violation(
                f"Container '{args.name}' mounts the container runtime socket {path}; whoever "
                "controls the container controls the host. Remove the mount."
            )


# Propagation modes that let mounts made inside the container appear on the host and back.
SHARED_PROPAGATION = {"shared", "rshared"}


def validate_mount_propagation(args, report_violation):
    # mounts[].bindOptions.propagation; the provider leaves it to Docker (rprivate) when absent.
    for mount in known_items(sequence(args.props, "mounts")):
        options = mount.get("bindOptions") if isinstance(mount, Mapping) else None
        propagation = str(options.get("propagation", "")) if isinstance(options, Mapping) else ""
        if propagation in SHARED_PROPAGATION:
            report_violation(
                f"Container '{args.name}' binds {mount.get('target', 'a path')} with {propagation} "
                "mount propagation, so mounts made on either side reach the other; use the "
                "default private propagation."
            )


SENSITIVE_PATHS_SCHEMA = schema(
    sensitivePaths={
        "type": "array",
        "items": {"type": "string", "pattern": "^/"},
        "default": [
            "/boot",
            "/dev",
            "/etc",
            "/lib",
            "/proc",
            "/sys",
            "/usr",
            "/root",
            "/run",
            "/var/run",
            "/var/lib/docker",
        ],
        "description": "Host directories no container may bind (the host root is always one).",
    }
)


def validate_sensitive_paths(args, report_violation):
    sensitive = setting(args, SENSITIVE_PATHS_SCHEMA, "sensitivePaths")
    for path in host_paths(args.props):
        if is_sensitive(path, sensitive):
            report_violation(
                f"Container '{args.name}' binds the sensitive host path {path}; use a named "
                "volume or a narrower directory."
            )


def validate_volume_host_path(args, report_violation):
    # A named volume of the local driver with `driverOpts` {type: none, o: bind, device: PATH}
    # is PATH on the host: every container mounting the volume binds PATH.
    path = bind_device(str(args.props.get("driver", "local")), mapping(args.props, "driverOpts"))
    if path is None:
        return
    if is_runtime_socket(path):
        report_violation(
            f"Volume '{args.name}' binds the container runtime socket {path} "
            "(`driverOpts.device`); whoever controls a container mounting it controls the host. "
            "Remove the driver options."
        )
    elif is_sensitive(path, setting(args, SENSITIVE_PATHS_SCHEMA, "sensitivePaths")):
        report_violation(
            f"Volume '{args.name}' binds the sensitive host path {path} (`driverOpts.device`); "
            "bind a dedicated directory outside it, or drop the driver options."
        )


def validate_host_namespaces(args, report_violation):
    for key in HOST_NAMESPACE_INPUTS:
        mode = str(args.props.get(key, ""))
        if mode == "host":
            report_violation(
                f"Container '{args.name}' shares the host's namespace through `{key}=host`; "
                "remove it."
            )
        elif mode.startswith("container:"):
            report_violation(
                f"Container '{args.name}' joins another container's namespace through "
                f"`{key}=container:...`; remove it so each container keeps its own."
            )


MEMORY_SCHEMA = schema(
    minimumMemoryMb={"type": "integer", "minimum": 4, "maximum": 1048576, "default": 32},
    maximumMemoryMb={"type": "integer", "minimum": 4, "maximum": 1048576, "default": 65536},
)


def validate_memory(args, report_violation):
    memory = int(args.props.get("memory", 0))
    lowest = setting(args, MEMORY_SCHEMA, "minimumMemoryMb")
    highest = setting(args, MEMORY_SCHEMA, "maximumMemoryMb")
    if memory <= 0:
        report_violation(
            f"Container '{args.name}' has no memory limit; set `memory` (MB) so one service "
            "cannot starve the others."
        )
    elif not lowest <= memory <= highest:
        report_violation(
            f"Container '{args.name}' sets memory={memory} MB, outside {lowest:g}-{highest:g} MB; "
            "choose a limit in range."
        )


def positive(value) -> bool:
    """True for a number, or a decimal string, above zero; False for anything else."""
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


CPU_SCHEMA = schema(
    requireHardLimit={
        "type": "boolean",
        "default": False,
        "description": "Ask for a hard cap (`cpus` or `cpuQuota`); a CPU weight (`cpuShares`) "
        "alone then no longer suffices.",
    }
)


def validate_cpu(args, report_violation):
    # The provider leaves every CPU input unset (0) by default: no weight, no cap. `cpus` is a
    # decimal string ("1.5").
    capped = positive(args.props.get("cpus")) or positive(args.props.get("cpuQuota"))
    weighted = positive(args.props.get("cpuShares"))
    if setting(args, CPU_SCHEMA, "requireHardLimit"):
        if not capped:
            report_violation(
                f"Container '{args.name}' has no CPU cap; set `cpus` so one service cannot take "
                "every core."
            )
    elif not (capped or weighted):
        report_violation(
            f"Container '{args.name}' has neither a CPU weight nor a CPU cap; set `cpuShares` "
            "(or `cpus`) so a busy service cannot starve the others."
        )


RESTART_SCHEMA = schema(
    allowedPolicies={
        "type": "array",
        "items": {"type": "string", "enum": ["on-failure", "always", "unless-stopped"]},
        "default": ["on-failure", "always", "unless-stopped"],
    },
    maximumRetries={"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
)


def validate_restart(args, report_violation):
    policy = str(args.props.get("restart", "no"))
    if policy not in setting(args, RESTART_SCHEMA, "allowedPolicies"):
        report_violation(
            f"Container '{args.name}' has restart policy '{policy}'; set `restart` to an "
            "allowed policy such as unless-stopped so the service returns after a failure."
        )
        return
    retries = int(args.props.get("maxRetryCount", 0))
    ceiling = setting(args, RESTART_SCHEMA, "maximumRetries")
    if policy == "on-failure" and not 1 <= retries <= ceiling:
        report_violation(
            f"Container '{args.name}' restarts on failure without a bound; set "
            f"`maxRetryCount` between 1 and {ceiling:g}."
        )


def validate_healthcheck(args, report_violation):
    # Every word is read: the first decides whether the check is disabled (NONE).
    tests = [
        str(word) for word in every_item(sequence(mapping(args.props, "healthcheck"), "tests"))
    ]
    if not tests or tests[0].upper() == "NONE":
        report_violation(
            f"Container '{args.name}' has no health check; add `healthcheck.tests` that probes "
            "the service itself."
        )


LOG_SCHEMA = schema(
    maximumFileSizeMb={"type": "number", "minimum": 1, "maximum": 10240, "default": 100},
    maximumFiles={"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
)


def log_size_mb(size: str) -> float | None:
    """`max-size` such as `10m` in megabytes; None when it cannot be read."""
    text = size.strip().lower()
    unit = text[-1:] if text[-1:] in SIZE_UNITS else "b"
    number = text[:-1] if unit != "b" else text
    try:
        return float(number) * SIZE_UNITS.get(unit, 1 / 1048576)
    except ValueError:
        return None


def validate_log_rotation(args, report_violation):
    driver = str(args.props.get("logDriver", "json-file"))
    options = mapping(args.props, "logOpts")
    if driver not in ROTATING_DRIVERS | {"json-file"}:
        report_violation(
            f"Container '{args.name}' logs through '{driver}', which does not rotate; use "
            "local, or json-file with max-size and max-file."
        )
        return
    if driver == "json-file" and ("max-size" not in options or "max-file" not in options):
        report_violation(
            f"Container '{args.name}' writes json-file logs without rotation; set "
            "`logOpts` max-size and max-file."
        )
        return
    # `local` rotates by default (20m x 5); explicit sizes must still stay within bounds.
    size = log_size_mb(str(options.get("max-size", "20m")))
    files = int(options.get("max-file", 5))
    if (
        size is None
        or size > setting(args, LOG_SCHEMA, "maximumFileSizeMb")
        or files > setting(args, LOG_SCHEMA, "maximumFiles")
    ):
        report_violation(
            f"Container '{args.name}' keeps more log than allowed or an unreadable size; "
            "lower `logOpts` max-size or max-file."
        )


def validate_user_networks(args, report_violation):
    # The provider creates a container on `networkMode` ("bridge" when unset) and, when
    # `networksAdvanced` lists networks, takes it off the bridge before joining them: it stays
    # on the default bridge only when it lists no network and keeps the bridge mode.
    if len(sequence(args.props, "networksAdvanced")):
        return
    mode = str(args.props.get("networkMode", "bridge"))
    if mode in ("bridge", "default", ""):
        report_violation(
            f"Container '{args.name}' joins no user-defined network and stays on the default "
            "bridge; attach it to its trust zone through `networksAdvanced`."
        )


READ_ONLY_SCHEMA = schema(
    writableRootServices={
        "type": "array",
        "items": {"type": "string"},
        "default": [],
        "description": "Reviewed exceptions: services whose root filesystem stays writable "
        "because their images write there.",
    }
)


def validate_read_only_root(args, report_violation):
    if args.props.get("readOnly", False):
        return
    name = service(args.props)
    if name in setting(args, READ_ONLY_SCHEMA, "writableRootServices"):
        args.not_applicable(f"{name}: reviewed exception (writableRootServices)")
    # Uploads are no reason: the provider cannot copy them into a read-only root, but a file
    # carrier (a container never started) can hold them in volumes the service mounts read-only.
    report_violation(
        f"Container '{args.name}' ({name}) has a writable root filesystem; set `readOnly=True` "
        "with `tmpfs` for scratch paths and take uploaded files from a file carrier, or list "
        "the service in `writableRootServices` as a reviewed exception."
    )


def carrier_problems(props) -> list[str]:
    """What keeps a never-started container from being an inert holder of files."""
    problems = []
    if props.get("mustRun", True) is not False:
        problems.append(
            "has `mustRun` on, so the provider would start it (or delete it as failed); set "
            "`mustRun=False`"
        )
    if len(sequence(props, "ports")):
        problems.append("publishes ports")
    if str(props.get("networkMode", "bridge")) != "none" or len(
        sequence(props, "networksAdvanced")
    ):
        problems.append("is attached to a network; set `networkMode='none'`")
    if len(sequence(props, "envs")):
        problems.append("carries environment variables, which `docker inspect` shows")
    own: list[PurePosixPath] = []
    for volume in known_items(sequence(props, "volumes")):
        if any(volume.get(key) for key in ("volumeName", "hostPath", "fromContainer")):
            problems.append(
                "mounts a named volume, a host path or another container's volumes; it may "
                "hold only anonymous volumes of its own"
            )
        elif volume.get("containerPath"):
            own.append(PurePosixPath(str(volume["containerPath"])))
    if len(sequence(props, "mounts")):
        problems.append("has `mounts`; it may hold only anonymous volumes of its own")
    for upload in known_items(sequence(props, "uploads")):
        path = PurePosixPath(str(upload.get("file", "")))
        if not any(path.is_relative_to(volume) for volume in own):
            problems.append(f"holds {path} outside its volumes, where no service reads it")
    return problems


def validate_file_carriers(args, report_violation):
    carriers = carriers_by_name(args.resources)
    containers = [r for r in args.resources if r.resource_type == CONTAINER]
    takers = [r for r in containers if volumes_from(r.props)]
    if not carriers and not takers and not any(is_file_carrier(r.props) for r in containers):
        args.not_applicable("no file carrier, and no container takes another's volumes")
    for resource in containers:
        if is_file_carrier(resource.props):
            for problem in carrier_problems(resource.props):
                report_violation(f"File carrier '{resource.name}' {problem}.", resource.urn)
    for resource in takers:
        for entry in volumes_from(resource.props):
            source = carrier_name(entry)
            carrier = carriers.get(source)
            if carrier is None:
                report_violation(
                    f"Container '{resource.name}' takes the volumes of '{source}', which is no "
                    "file carrier of this stack (a container never started); only a carrier's "
                    "files may be shared.",
                    resource.urn,
                )
            elif not entry.endswith(":ro"):
                report_violation(
                    f"Container '{resource.name}' takes the volumes of '{source}' writable; "
                    f"write `{source}:ro` (the provider ignores `readOnly` for `fromContainer`).",
                    resource.urn,
                )
            elif label(carrier.props, SERVICE_LABEL) != label(resource.props, SERVICE_LABEL):
                report_violation(
                    f"Container '{resource.name}' takes the files of '{source}', a carrier "
                    "labelled for another service; each service reads only its own files.",
                    resource.urn,
                )


ROOT_USER_SCHEMA = schema(
    rootServices={
        "type": "array",
        "items": {"type": "string"},
        "default": ["database", "emr"],
        "description": "Reviewed exceptions: services that run as root (images that step "
        "down by themselves, or root with every capability dropped).",
    }
)


def validate_user(args, report_violation):
    name = service(args.props)
    if name in setting(args, ROOT_USER_SCHEMA, "rootServices"):
        args.not_applicable(f"{name}: reviewed exception (rootServices)")
    user = str(args.props.get("user", "")).split(":", 1)[0]
    if user in ("", "root", "0"):
        report_violation(
            f"Container '{args.name}' runs as root; set `user` to an unprivileged uid:gid."
        )


POLICIES = [
    resource_policy(
        name="container-disallow-privileged",
        description="Containers must not run in privileged mode.",
        validate=validate_privileged,
        resource_types=[CONTAINER],
        severity=Severity.CRITICAL,
        citations=[ACCESS_CONTROL, INTEGRITY],
        cis=["5.5"],
        remediation="Remove `privileged=True`; grant single capabilities instead.",
    ),
    resource_policy(
        name="container-disallow-shared-mount-propagation",
        description="No bind mount shares mount events between the container and the host.",
        validate=validate_mount_propagation,
        resource_types=[CONTAINER],
        severity=Severity.MEDIUM,
        citations=[ACCESS_CONTROL, INTEGRITY],
        cis=["5.20"],
        remediation="Drop `bindOptions.propagation` (Docker's default is rprivate) or set it to "
        "`private`/`rprivate`.",
    ),
    resource_policy(
        name="container-enforce-capability-drop-all",
        description="Containers drop every Linux capability and add back only allowed ones.",
        validate=validate_capabilities,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[ACCESS_CONTROL],
        cis=["5.4"],
        remediation="Set `capabilities={'drops': ['ALL'], 'adds': [...]}` with the minimum set.",
        config_schema=CAPABILITIES_SCHEMA,
    ),
    resource_policy(
        name="container-enable-no-new-privileges",
        description="Containers run with no-new-privileges so setuid binaries cannot escalate.",
        validate=validate_no_new_privileges,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[ACCESS_CONTROL],
        cis=["5.26"],
        remediation="Add `no-new-privileges:true` to `securityOpts`.",
    ),
    resource_policy(
        name="container-disallow-unconfined-profiles",
        description="Containers keep their AppArmor, seccomp and SELinux confinement.",
        validate=validate_confinement,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[ACCESS_CONTROL, INTEGRITY],
        cis=["5.2", "5.22"],
        remediation="Remove `apparmor=unconfined`, `seccomp=unconfined` and `label=disable`.",
    ),
    resource_policy(
        name="container-disallow-docker-socket",
        description="No container mounts the Docker or containerd socket.",
        validate=validate_docker_socket,
        resource_types=[CONTAINER],
        severity=Severity.CRITICAL,
        citations=[ACCESS_CONTROL, INTEGRITY],
        cis=["5.32"],
        remediation="Remove the socket bind; use an API proxy with a narrow allow-list if needed.",
    ),
    resource_policy(
        name="container-disallow-sensitive-host-paths",
        description="No container binds the host root or a sensitive host directory.",
        validate=validate_sensitive_paths,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[ACCESS_CONTROL, INTEGRITY],
        cis=["5.6"],
        remediation="Replace the bind mount with a named Docker volume or an upload.",
        config_schema=SENSITIVE_PATHS_SCHEMA,
    ),
    resource_policy(
        name="volume-disallow-sensitive-host-paths",
        description="No volume binds the host root, a sensitive directory or the runtime socket.",
        validate=validate_volume_host_path,
        resource_types=[VOLUME],
        severity=Severity.CRITICAL,
        citations=[ACCESS_CONTROL, INTEGRITY],
        cis=["5.6", "5.32"],
        remediation="Leave `driverOpts` unset so Docker manages the volume, or bind a dedicated "
        "directory such as /srv/hospital/backups (`hospital:backup.hostPath`).",
        config_schema=SENSITIVE_PATHS_SCHEMA,
    ),
    resource_policy(
        name="container-disallow-host-namespaces",
        description="Containers share no network, PID, IPC or user namespace with the host or "
        "another container.",
        validate=validate_host_namespaces,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[ACCESS_CONTROL],
        cis=["5.10", "5.16", "5.17", "5.31"],
        remediation="Remove `networkMode`, `pidMode`, `ipcMode` or `usernsMode` set to host or "
        "to `container:<id>`.",
    ),
    resource_policy(
        name="container-configure-memory-limit",
        description="Every container has a memory limit within the configured bounds.",
        validate=validate_memory,
        resource_types=[CONTAINER],
        severity=Severity.MEDIUM,
        citations=[CONTINGENCY],
        cis=["5.11"],
        remediation="Set `memory` in MB from the service's sizing.",
        config_schema=MEMORY_SCHEMA,
        running_only=True,
    ),
    resource_policy(
        name="container-configure-cpu-limit",
        description="Every container has a CPU weight or a CPU cap.",
        validate=validate_cpu,
        resource_types=[CONTAINER],
        severity=Severity.MEDIUM,
        citations=[CONTINGENCY],
        cis=["5.12"],
        remediation="Set `cpuShares` from the service's priority (the backup job below the "
        "clinical services), or `cpus` where a hard cap is wanted.",
        config_schema=CPU_SCHEMA,
        running_only=True,
    ),
    resource_policy(
        name="container-configure-restart-policy",
        description="Containers restart after a failure, with bounded retries for on-failure.",
        validate=validate_restart,
        resource_types=[CONTAINER],
        severity=Severity.MEDIUM,
        citations=[CONTINGENCY],
        cis=["5.15"],
        remediation="Set `restart='unless-stopped'`, or on-failure with `maxRetryCount`.",
        config_schema=RESTART_SCHEMA,
        running_only=True,
    ),
    resource_policy(
        name="container-missing-healthcheck",
        description="Every container declares a health check.",
        validate=validate_healthcheck,
        resource_types=[CONTAINER],
        severity=Severity.MEDIUM,
        citations=[ACTIVITY_REVIEW, CONTINGENCY],
        cis=["5.27"],
        remediation="Add `healthcheck` with a test that exercises the service.",
        running_only=True,
    ),
    resource_policy(
        name="container-configure-log-rotation",
        description="Container logs rotate so audit evidence is kept without filling the disk.",
        validate=validate_log_rotation,
        resource_types=[CONTAINER],
        severity=Severity.MEDIUM,
        citations=[AUDIT],
        cis=["2.13"],
        remediation="Use `logDriver='local'`, or json-file with `logOpts` max-size and max-file.",
        config_schema=LOG_SCHEMA,
        running_only=True,
    ),
    resource_policy(
        name="container-disallow-default-bridge",
        description="Containers join user-defined trust-zone networks, not the default bridge.",
        validate=validate_user_networks,
        resource_types=[CONTAINER],
        severity=Severity.MEDIUM,
        citations=[ACCESS_CONTROL, "164.312(e)(1)"],
        cis=["5.30"],
        remediation="Attach the container to its zone networks with `networksAdvanced`.",
        running_only=True,
    ),
    stack_policy(
        name="container-enforce-read-only-file-carriers",
        description="A file carrier (a container never started) only holds files in its own "
        "anonymous volumes, and every container taking its volumes takes them read-only.",
        validate=validate_file_carriers,
        severity=Severity.HIGH,
        citations=[INTEGRITY, ACCESS_CONTROL],
        remediation="Create the carrier with `start=False`, `mustRun=False`, "
        "`networkMode='none'`, no ports or environment and one anonymous volume per upload "
        "directory; mount it in its service with `fromContainer='<carrier>:ro'`.",
    ),
    resource_policy(
        name="container-enable-read-only-root",
        description="Containers run with a read-only root filesystem.",
        validate=validate_read_only_root,
        resource_types=[CONTAINER],
        severity=Severity.MEDIUM,
        citations=[INTEGRITY],
        cis=["5.13"],
        remediation="Set `readOnly=True` and mount `tmpfs` where the image writes scratch data.",
        config_schema=READ_ONLY_SCHEMA,
        running_only=True,
    ),
    resource_policy(
        name="container-disallow-root-user",
        description="Containers run as an unprivileged user unless their image must start as root.",
        validate=validate_user,
        resource_types=[CONTAINER],
        severity=Severity.MEDIUM,
        citations=[ACCESS_CONTROL],
        cis=["4.1"],
        remediation="Set `user` to the image's service account uid:gid.",
        config_schema=ROOT_USER_SCHEMA,
        running_only=True,
    ),
]

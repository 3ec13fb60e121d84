"""What every service stands on: settings, trust zones, credentials, PKI, volumes, and one
way to declare a hardened container so that every service gets the same baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import pulumi
import pulumi_docker as docker

from components.credentials import Credentials
from components.network import TrustZones
from components.pki import Pki
from components.volumes import SERVICE_LABEL, ServiceVolume, VolumeCatalog

if TYPE_CHECKING:
    from components.settings import Settings

RESTART_POLICY = "unless-stopped"
NO_NEW_PRIVILEGES = "no-new-privileges:true"
DEFAULT_TMPFS = {"/tmp": "rw,noexec,nosuid,nodev,size=64m"}
# A file carrier is labelled with this role; the container it serves, with the carrier's id.
ROLE_LABEL = "hospital.role"
FILE_CARRIER_ROLE = "files"
FILES_LABEL = "hospital.files"
# Directories a carrier volume may not cover: they hold far more than a service's own files, and
# an anonymous volume there would freeze the image's copy of them for the carrier's lifetime.
SYSTEM_DIRECTORIES = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
    }
)


@dataclass(frozen=True)
class Publish:
    """A container port published on one host address."""

    address: str
    host_port: int
    container_port: int
    purpose: str
    protocol: str = "tcp"


@dataclass(frozen=True)
class Mount:
    """A service volume mounted into a container."""

    volume: ServiceVolume
    path: str
    read_only: bool = False


@dataclass(frozen=True)
class Upload:
    """A file written into the container before it starts; `secret` keeps it out of plain state."""

    path: str
    content: pulumi.Input[str]
    secret: bool = False
    executable: bool = False


@dataclass(frozen=True)
class Healthcheck:
    """A Docker health check; `start_period` covers slow first starts."""

    test: Sequence[str]
    interval: str = "30s"
    timeout: str = "10s"
    retries: int = 3
    start_period: str = "30s"


@dataclass(frozen=True)
class WebSite:
    """A web interface that the gateway serves over TLS on one audience's address.

    `zone` is the trust zone the gateway joins to reach `upstream_host:upstream_port`;
    `listen_address` and `listen_port` are where the gateway publishes it (the edge address for
    staff, the management address for the EDR GUI); `streaming` turns off request buffering and
    body size limits for large uploads and downloads such as DICOM.
    """

    service: str
    host_name: str
    upstream_host: str
    upstream_port: int
    zone: str
    listen_address: str
    listen_port: int
    upstream_tls: bool = False
    streaming: bool = False


@dataclass
class ServiceRecord:
    """A declared container, kept for the exports (services and ports tables)."""

    service: str
    container_name: str
    image: str
    zones: tuple[str, ...]
    publish: tuple[Publish, ...]
    container: docker.Container
    read_only: bool = False
    carrier: FileCarrier | None = None


@dataclass(frozen=True)
class FileCarrier:
    """The never-started container whose volumes hold a read-only service's uploaded files."""

    name: str
    directories: tuple[str, ...]
    container: docker.Container


@dataclass
class Platform:
    """The shared foundation handed to every service component."""

    settings: Settings
    stack: str
    zones: TrustZones
    credentials: Credentials
    pki: Pki
    volumes: VolumeCatalog
    services: list[ServiceRecord] = field(default_factory=list)
    _images: dict[str, docker.RemoteImage] = field(default_factory=dict)

    def container_name(self, service: str) -> str:
        return f"hospital-{self.stack}-{service}"

    def image(self, reference: str, parent: pulumi.Resource) -> docker.RemoteImage:
        """The pinned image `reference`, pulled once and kept when the stack goes."""
        if reference not in self._images:
            resource_name = reference.replace("/", "-").replace(":", "-").replace("@", "-")
            self._images[reference] = docker.RemoteImage(
                resource_name,
                docker.RemoteImageArgs(name=reference, keep_locally=True),
                opts=pulumi.ResourceOptions(parent=parent),
            )
        return self._images[reference]

    def container(
        self,
        service: str,
        *,
        image: str,
        zones: Sequence[str],
        healthcheck: Healthcheck,
        memory_mb: int,
        parent: pulumi.Resource,
        cpu_shares: int = 1024,
        aliases: Sequence[str] = (),
        envs: Mapping[str, pulumi.Input[str]] | None = None,
        secret_envs: Mapping[str, pulumi.Input[str]] | None = None,
        uploads: Sequence[Upload] = (),
        mounts: Sequence[Mount] = (),
        publish: Sequence[Publish] = (),
        capabilities: Sequence[str] = (),
        read_only: bool = True,
        tmpfs: Mapping[str, str] | None = None,
        user: str | None = None,
        command: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
        wait_timeout_s: int = 300,
    ) -> docker.Container:
        """Declare the container of `service` with the stack's baseline hardening.

        Every container drops all capabilities and adds back only `capabilities`, runs with
        no-new-privileges, a memory limit, a CPU weight (`cpu_shares`), a restart policy, a
        health check that `pulumi up` waits for, rotated logs and user-defined networks only; its
        root file system is read-only unless `read_only=False` says the image cannot run that way.

        A read-only container gets its `uploads` from a file carrier (see `file_carrier`): the
        provider copies uploads through the container's root, which Docker refuses when that
        root is read-only, even for files that land in a volume.
        """
        name = self.container_name(service)
        labels = [
            docker.ContainerLabelArgs(label=SERVICE_LABEL, value=service),
            docker.ContainerLabelArgs(label="hospital.stack", value=self.stack),
        ]
        volumes = [
            docker.ContainerVolumeArgs(
                volume_name=mount.volume.resource.name,
                container_path=mount.path,
                read_only=mount.read_only,
            )
            for mount in mounts
        ]
        carrier = None
        if read_only and uploads:
            occupied = [mount.path for mount in mounts] + list(
                DEFAULT_TMPFS if tmpfs is None else tmpfs
            )
            carrier = self.file_carrier(service, image, uploads, occupied, parent)
            # Docker's `<container>:ro` takes every volume of the carrier read-only. The
            # provider passes `from_container` through as written and ignores `read_only` for it,
            # so the suffix is what makes the files read-only.
            volumes.append(docker.ContainerVolumeArgs(from_container=f"{carrier.name}:ro"))
            # A new carrier (new files or a new image) must replace the service: the label
            # carries the carrier's id, and the provider replaces a container whose labels change.
            labels.append(docker.ContainerLabelArgs(label=FILES_LABEL, value=carrier.container.id))
            uploads = ()
        networks = [self.zones.network(zone) for zone in zones]
        env_lines = [pulumi.Output.concat(key, "=", value) for key, value in (envs or {}).items()]
        env_lines += [
            pulumi.Output.secret(pulumi.Output.concat(key, "=", value))
            for key, value in (secret_envs or {}).items()
        ]
        logging = self.settings.logging

        container = docker.Container(
            service,
            docker.ContainerArgs(
                name=name,
                hostname=aliases[0] if aliases else service,
                image=self.image(image, parent).image_id,
                envs=env_lines or None,
                command=list(command) if command is not None else None,
                entrypoints=list(entrypoint) if entrypoint is not None else None,
                user=user,
                uploads=[_upload_args(upload) for upload in uploads] or None,
                volumes=volumes or None,
                # No network_mode: the provider would create the container on that network
                # without aliases, and Docker then ignores the aliases networks_advanced lists
                # for a network the container is already on. Unset, the container is created
                # on the bridge, taken off it, and joins each zone with its aliases.
                networks_advanced=[
                    docker.ContainerNetworksAdvancedArgs(
                        name=network.name, aliases=[*aliases, name]
                    )
                    for network in networks
                ],
                ports=[
                    docker.ContainerPortArgs(
                        internal=port.container_port,
                        external=port.host_port,
                        ip=port.address,
                        protocol=port.protocol,
                    )
                    for port in publish
                ]
                or None,
                healthcheck=docker.ContainerHealthcheckArgs(
                    tests=list(healthcheck.test),
                    interval=healthcheck.interval,
                    timeout=healthcheck.timeout,
                    retries=healthcheck.retries,
                    start_period=healthcheck.start_period,
                ),
                capabilities=docker.ContainerCapabilitiesArgs(
                    drops=["ALL"], adds=sorted(capabilities) or None
                ),
                security_opts=[NO_NEW_PRIVILEGES],
                read_only=read_only,
                tmpfs=dict(DEFAULT_TMPFS if tmpfs is None else tmpfs) or None,
                memory=memory_mb,
                memory_swap=memory_mb,
                cpu_shares=cpu_shares,
                restart=RESTART_POLICY,
                log_driver=logging.driver,
                log_opts={"max-size": logging.max_size, "max-file": str(logging.max_file)},
                labels=labels,
                wait=True,
                wait_timeout=wait_timeout_s,
                must_run=True,
            ),
            opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
        )
        self.services.append(
            ServiceRecord(
                service,
                name,
                image,
                tuple(zones),
                tuple(publish),
                container,
                read_only=read_only,
                carrier=carrier,
            )
        )
        return container

    def file_carrier(
        self,
        service: str,
        image: str,
        uploads: Sequence[Upload],
        occupied: Iterable[str],
        parent: pulumi.Resource,
    ) -> FileCarrier:
        """A container that is created, filled with `uploads` and never started.

        Each directory holding uploads becomes an anonymous volume of the carrier: Docker fills it
        with the image's own files at that path when the carrier is created, the provider then
        copies the uploads into it, and the service mounts them all read-only with
        `volumes_from`. The carrier runs the service's image (already pulled; nothing of it ever
        executes), joins no network, holds no capability, and goes with its volumes: replacing
        it (new files, new image) gives the service fresh volumes, so a file dropped from the
        uploads does not linger.

        Limitation: Docker also gives the carrier an anonymous volume for every VOLUME its image
        declares (MariaDB's /var/lib/mysql), and `volumes_from` passes those on read-only. The
        service's own mount at such a path takes precedence, so a read-only service must mount
        a volume of its own at each path its image declares.
        """
        name = f"{self.container_name(service)}-files"
        directories = carrier_directories([upload.path for upload in uploads], occupied)
        container = docker.Container(
            f"{service}-files",
            docker.ContainerArgs(
                name=name,
                image=self.image(image, parent).image_id,
                start=False,
                must_run=False,
                network_mode="none",
                uploads=[_upload_args(upload) for upload in uploads],
                volumes=[docker.ContainerVolumeArgs(container_path=path) for path in directories],
                remove_volumes=True,
                capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
                security_opts=[NO_NEW_PRIVILEGES],
                labels=[
                    docker.ContainerLabelArgs(label=SERVICE_LABEL, value=service),
                    docker.ContainerLabelArgs(label="hospital.stack", value=self.stack),
                    docker.ContainerLabelArgs(label=ROLE_LABEL, value=FILE_CARRIER_ROLE),
                ],
            ),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        return FileCarrier(name, directories, container)

    def ports_table(self) -> list[dict]:
        """Every published port: the generated counterpart of a ports appendix."""
        return [
            {
                "service": record.service,
                "container": record.container_name,
                "address": port.address,
                "hostPort": port.host_port,
                "containerPort": port.container_port,
                "protocol": port.protocol,
                "purpose": port.purpose,
            }
            for record in self.services
            for port in record.publish
        ]


def _upload_args(upload: Upload) -> docker.ContainerUploadArgs:
    content = pulumi.Output.secret(upload.content) if upload.secret else upload.content
    return docker.ContainerUploadArgs(
        file=upload.path, content=content, executable=upload.executable or None
    )


def carrier_directories(paths: Iterable[str], occupied: Iterable[str] = ()) -> tuple[str, ...]:
    """The fewest directories whose volumes hold every file in `paths`: each file's directory,
    left out when another one already contains it.

    A directory must not be a system directory (`/etc` itself, say) and must not overlap a
    path the service mounts otherwise (`occupied`: its volumes and tmpfs): both would put the
    files where the service does not read them, or hide what it does read.
    """
    parents = sorted({PurePosixPath(path).parent for path in paths})
    directories: list[PurePosixPath] = []
    for parent in parents:
        if str(parent) in SYSTEM_DIRECTORIES:
            raise ValueError(
                f"upload directory {parent}: a file carrier cannot hold a system directory; "
                "upload into a directory of the service's own"
            )
        if not any(parent.is_relative_to(kept) for kept in directories):
            directories.append(parent)
    for directory in directories:
        for path in map(PurePosixPath, occupied):
            if directory.is_relative_to(path) or path.is_relative_to(directory):
                raise ValueError(
                    f"upload directory {directory} overlaps {path}, which the service mounts "
                    "otherwise; upload into a directory of its own"
                )
    return tuple(str(directory) for directory in directories)

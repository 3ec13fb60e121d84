"""Named Docker volumes labelled with the service that owns them and the class of data they hold.

The labels drive backup coverage and the documentation; in prod every volume outlives
`pulumi destroy`, so patient data and audit logs can only be removed on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_docker as docker

SERVICE_LABEL = "hospital.service"
DATA_CLASS_LABEL = "hospital.data-class"
# `backup` holds only the encrypted archives: a backup destination, never a backup source.
# `scratch` holds a service's temporary files (a read-only container's /tmp on disk): nothing in
# it outlives the operation that wrote it, so it is not backed up.
DataClass = Literal["phi", "config", "logs", "backup", "scratch"]
BACKED_UP_CLASSES: frozenset[DataClass] = frozenset({"phi", "config"})


@dataclass(frozen=True)
class ServiceVolume:
    """A volume and what it holds; `name` is the Docker volume name."""

    service: str
    purpose: str
    data_class: DataClass
    name: str
    resource: docker.Volume

    @property
    def backed_up(self) -> bool:
        return self.data_class in BACKED_UP_CLASSES


class VolumeCatalog:
    """Creates every service volume and remembers it, so backup and docs can ask by class."""

    def __init__(self, *, stack: str, retain: bool) -> None:
        self._stack = stack
        self._retain = retain
        self.volumes: list[ServiceVolume] = []

    def create(
        self,
        service: str,
        purpose: str,
        data_class: DataClass,
        parent: pulumi.Resource,
        *,
        driver_opts: dict[str, str] | None = None,
    ) -> ServiceVolume:
        """A new volume `hospital-<stack>-<service>-<purpose>`, created under `parent`;
        `driver_opts` go to the local driver (a bind to a host directory, for example)."""
        name = f"hospital-{self._stack}-{service}-{purpose}"
        resource = docker.Volume(
            f"{service}-{purpose}",
            docker.VolumeArgs(
                name=name,
                driver="local",
                driver_opts=driver_opts,
                labels=[
                    docker.VolumeLabelArgs(label=SERVICE_LABEL, value=service),
                    docker.VolumeLabelArgs(label=DATA_CLASS_LABEL, value=data_class),
                    docker.VolumeLabelArgs(label="hospital.stack", value=self._stack),
                ],
            ),
            opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=self._retain),
        )
        volume = ServiceVolume(service, purpose, data_class, name, resource)
        self.volumes.append(volume)
        return volume

    def of_class(self, *classes: DataClass) -> list[ServiceVolume]:
        return [volume for volume in self.volumes if volume.data_class in classes]

    def describe(self, backups_enabled: bool) -> list[dict]:
        """The `volumes` export: name, service, data class and backup coverage."""
        return [
            {
                "name": volume.name,
                "service": volume.service,
                "dataClass": volume.data_class,
                "backedUp": backups_enabled and volume.backed_up,
            }
            for volume in self.volumes
        ]

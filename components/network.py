"""Trust zones as Docker networks: edge, clinical, data (internal) and security."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_docker as docker

from components.config_model import ZONES

if TYPE_CHECKING:
    from components.settings import Settings

ZONE_LABEL = "hospital.zone"
INTERNAL_ZONES = frozenset({"data"})
"""Zones with no route off the host: the database and its clients only talk among themselves."""


class TrustZones(pulumi.ComponentResource):
    """One user-defined bridge network per trust zone, with the subnet from the settings."""

    def __init__(
        self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hospital:components:TrustZones", name, None, opts)
        prefix = f"hospital-{pulumi.get_stack()}"
        subnets = settings.network.subnets()

        self.networks: dict[str, docker.Network] = {
            zone: docker.Network(
                f"{name}-{zone}",
                docker.NetworkArgs(
                    name=f"{prefix}-{zone}",
                    driver="bridge",
                    internal=zone in INTERNAL_ZONES,
                    ipam_configs=[docker.NetworkIpamConfigArgs(subnet=str(subnets[zone]))],
                    labels=[
                        docker.NetworkLabelArgs(label=ZONE_LABEL, value=zone),
                        docker.NetworkLabelArgs(label="hospital.stack", value=pulumi.get_stack()),
                    ],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for zone in ZONES
        }

        self.register_outputs({zone: network.name for zone, network in self.networks.items()})

    def network(self, zone: str) -> docker.Network:
        return self.networks[zone]

    def describe(self) -> dict[str, pulumi.Output]:
        """The `networks` export: name, subnet and whether the zone is internal."""
        return {
            zone: pulumi.Output.all(network.name, network.ipam_configs, network.internal).apply(
                lambda values: {
                    "name": values[0],
                    "subnet": values[1][0]["subnet"] if values[1] else None,
                    "internal": bool(values[2]),
                }
            )
            for zone, network in self.networks.items()
        }

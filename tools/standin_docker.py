"""pulumi-docker outputs: inputs echoed, plus what the provider or the engine would compute.

Image ids are `sha256:` + sha256(name), so a container's `image` leads back to its
RemoteImage; container addresses come from the subnets of the networks they join.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
IMAGE = "docker:index/image:Image"
GET_REGISTRY_IMAGE = "docker:index/getRegistryImage:getRegistryImage"
GET_NETWORK = "docker:index/getNetwork:getNetwork"

# Docker's default address pools hand out 172.17-31.0.0/16 and then 192.168.x.0/20.
DEFAULT_POOL_START = ipaddress.ip_network("172.18.0.0/16")


def image_id(name: str) -> str:
    """The stand-in image id for a reference: `sha256:` + sha256(name)."""
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def repo_digest(name: str) -> str:
    """`repository@sha256:…` for a reference; a reference already by digest is kept."""
    if "@sha256:" in name:
        return name
    repository = name
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return f"{repository}@sha256:{hashlib.sha256(('digest:' + name).encode()).hexdigest()}"


def object_id(kind: str, name: str) -> str:
    """A 64-hex id like the Docker engine's, stable for one (kind, name)."""
    return hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()


@dataclass
class _Subnet:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    gateway: str
    taken: set[str] = field(default_factory=set)


class DockerStandIn:
    """Keeps the networks created so far, so containers get addresses inside them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subnets: dict[str, _Subnet] = {}
        self._next_pool = 0

    def remote_image(self, name: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        reference = str(inputs.get("name", name))
        digest = image_id(reference)
        outputs = {**inputs, "imageId": digest, "repoDigest": repo_digest(reference)}
        return digest + reference, outputs

    def image(self, name: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        reference = str(inputs.get("imageName", name))
        build = inputs.get("build") or {}
        outputs = {
            **inputs,
            "imageName": reference,
            "baseImageName": reference,
            "repoDigest": repo_digest(reference),
            "context": build.get("context", "."),
            "dockerfile": build.get("dockerfile", "Dockerfile"),
            "platform": build.get("platform", "linux/amd64"),
            "registryServer": (inputs.get("registry") or {}).get("server", "docker.io"),
        }
        return image_id(reference), outputs

    def network(self, name: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        network_name = str(inputs.get("name", name))
        network_id = object_id("network", network_name)
        ipam = [dict(entry) for entry in inputs.get("ipamConfigs") or []]
        with self._lock:
            if not ipam:
                pool = ipaddress.ip_network(DEFAULT_POOL_START)
                subnet = ipaddress.ip_network(
                    (int(pool.network_address) + (self._next_pool << 16), 16)
                )
                self._next_pool += 1
                ipam = [{"subnet": str(subnet), "gateway": str(subnet.network_address + 1)}]
            first = ipam[0]
            subnet = ipaddress.ip_network(str(first["subnet"]), strict=False)
            first.setdefault("gateway", str(subnet.network_address + 1))
            registered = _Subnet(subnet, str(first["gateway"]))
            self._subnets[network_name] = registered
            self._subnets[network_id] = registered
        outputs = {
            "driver": "bridge",
            "internal": False,
            "attachable": False,
            "ingress": False,
            "ipv6": False,
            "ipamDriver": "default",
            "options": {},
            **inputs,
            "name": network_name,
            "ipamConfigs": ipam,
            "scope": "local",
        }
        return network_id, outputs

    def volume(self, name: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        volume_name = str(inputs.get("name") or object_id("volume", name))
        outputs = {
            "driver": "local",
            **inputs,
            "name": volume_name,
            "mountpoint": f"/var/lib/docker/volumes/{volume_name}/_data",
        }
        return volume_name, outputs

    def container(self, name: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        container_name = str(inputs.get("name", name))
        container_id = object_id("container", container_name)
        network_datas = [
            self._attach(container_name, attachment)
            for attachment in inputs.get("networksAdvanced") or []
        ]
        outputs = {
            "hostname": container_id[:12],
            "ipcMode": "private",
            "logDriver": "json-file",
            "restart": "no",
            "runtime": "runc",
            "shmSize": 64,
            "networkMode": "bridge",
            **inputs,
            "name": container_name,
            "networkDatas": network_datas,
            "bridge": "",
        }
        return container_id, outputs

    def registry_image(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        reference = str(arguments.get("name", ""))
        return {**arguments, "sha256Digest": image_id(reference)}

    def network_lookup(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        name = str(arguments.get("name", ""))
        return {**arguments, "id": object_id("network", name), "driver": "bridge", "scope": "local"}

    def _attach(self, container_name: str, attachment: Mapping[str, Any]) -> dict[str, Any]:
        """An address for the container in a known network, stable for its name."""
        network_ref = str(attachment.get("name", ""))
        with self._lock:
            subnet = self._subnets.get(network_ref)
            if subnet is None:
                return {"networkName": network_ref}
            address = attachment.get("ipv4Address") or self._free_address(subnet, container_name)
            subnet.taken.add(str(address))
        return {
            "networkName": network_ref,
            "ipAddress": str(address),
            "ipPrefixLength": subnet.network.prefixlen,
            "gateway": subnet.gateway,
            "macAddress": _mac_address(container_name, network_ref),
        }

    @staticmethod
    def _free_address(subnet: _Subnet, container_name: str) -> str:
        hosts = subnet.network.num_addresses - 3
        start = int(hashlib.sha256(container_name.encode()).hexdigest(), 16) % max(hosts, 1)
        for step in range(hosts):
            candidate = str(subnet.network.network_address + 2 + (start + step) % hosts)
            if candidate not in subnet.taken and candidate != subnet.gateway:
                return candidate
        raise ValueError(f"network {subnet.network} has no free address for {container_name}")


def _mac_address(container_name: str, network_ref: str) -> str:
    digest = hashlib.sha256(f"{container_name}@{network_ref}".encode()).digest()
    return "02:42:" + ":".join(f"{b:02x}" for b in digest[:4])

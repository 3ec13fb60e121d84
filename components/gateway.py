"""The nginx TLS gateway: the image contract, its settings and (below) the component."""

from __future__ import annotations

from components.config_model import MemoryMb, PinnedImage, Port, StackModel

IMAGE = "nginx:1.28.0"
ALIAS = "gateway"


class GatewaySettings(StackModel):
    """nginx: image, memory and the host ports it publishes on the edge address."""

    image: PinnedImage = IMAGE
    memory_mb: MemoryMb = 256
    https_port: Port = 443
    http_port: Port = 80

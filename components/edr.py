"""Velociraptor EDR: the image contract, its settings and (below) the component."""

from __future__ import annotations

import re

from pydantic import field_validator

from components.config_model import MemoryMb, PinnedImage, Port, StackModel

IMAGE = "ghcr.io/velocidex/velociraptor-server:0.77.3"
MINIMUM_VERSION = (0, 77, 3)
ALIAS = "velociraptor"


class EdrSettings(StackModel):
    """Velociraptor: image (0.77.3 or later), memory and the ports for agents and the GUI."""

    image: PinnedImage = IMAGE
    memory_mb: MemoryMb = 1024
    frontend_port: Port = 8000
    gui_port: Port = 8889

    @field_validator("image")
    @classmethod
    def _not_vulnerable(cls, image: str) -> str:
        version = re.search(r":v?(\d+)\.(\d+)\.(\d+)", image)
        if version and tuple(int(part) for part in version.groups()) < MINIMUM_VERSION:
            raise ValueError("must be Velociraptor 0.77.3 or later (earlier releases have CVEs)")
        return image

"""OpenEMR: the image contract, its settings and (below) the component."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.config_model import MemoryMb, PinnedImage, StackModel

IMAGE = "openemr/openemr:8.0.0"
HTTP_PORT = 80
SITES_PATH = "/var/www/localhost/htdocs/openemr/sites"
LOG_PATH = "/var/log"
ALIAS = "openemr"


class EmrSettings(StackModel):
    """OpenEMR: image, memory and the name of its first administrator."""

    image: PinnedImage = IMAGE
    memory_mb: MemoryMb = 1024
    admin_user: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{2,31}$")] = "emr-admin"

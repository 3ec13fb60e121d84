"""Orthanc PACS: the image contract, its settings and (below) the component."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, field_validator

from components.config_model import MemoryMb, PinnedImage, Port, StackModel

IMAGE = "orthancteam/orthanc:25.9.1"
HTTP_PORT = 8042
ALIAS = "orthanc"

# DICOM PS3.5: an AE title is 1-16 characters of the default repertoire, no backslash or controls.
AeTitle = Annotated[str, Field(pattern=r"^[ -\[\]-~]{1,16}$")]
DicomService = Literal["echo", "find", "get", "move", "store"]


class ModalitySettings(StackModel):
    """One DICOM peer: its AE title, where it listens and what it may ask of the PACS."""

    aet: AeTitle
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Port = 104
    allow: frozenset[DicomService] = frozenset({"echo", "store"})
    tls: bool = False

    @field_validator("host")
    @classmethod
    def _host_is_a_peer(cls, host: str) -> str:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host
        if address.is_unspecified:
            raise ValueError("must be the modality's own address, not 0.0.0.0")
        return host


class PacsSettings(StackModel):
    """Orthanc: image, memory, its own AE title and port, and the modalities it trusts."""

    image: PinnedImage = IMAGE
    memory_mb: MemoryMb = 2048
    aet: AeTitle = "ORTHANC"
    dicom_port: Port = 4242
    dicom_tls: bool = False
    modalities: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")], ModalitySettings] = (
        Field(default_factory=dict)
    )

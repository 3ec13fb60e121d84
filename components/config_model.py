"""Base model and shared field types for the stack settings.

Every settings model is frozen, rejects unknown keys and uses the camelCase names a stack file
carries, so a validation error points at the exact key a user wrote.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

NAMESPACE = "hospital"
"""The stack configuration namespace: every key is `hospital:<key>`."""

ZONES = ("edge", "clinical", "data", "security")
"""The trust zones, outermost first."""

CA_PRIVATE_KEY = "caPrivateKey"
# What a problem shows in place of a value held as a secret.
SECRET_SHOWN_AS = "[secret]"
"""The one secret setting: the private key of the hospital's own CA, read only by the PKI."""

# A reference with a tag other than `latest`, or with a digest; registry host and path allowed.
_PINNED_IMAGE = re.compile(
    r"^(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+/[a-z0-9._/-]+)?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


class StackModel(BaseModel):
    """Base for every settings model: immutable, closed to unknown keys, camelCase keys."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
    )


def _pinned(reference: str) -> str:
    """pinned to a version tag or a sha256 digest, never `latest`"""
    match = _PINNED_IMAGE.match(reference)
    if match is None:
        raise ValueError("must be an image reference such as 'mariadb:11.4.8'")
    tag, digest = match.group("tag"), match.group("digest")
    if digest is None and (tag is None or tag == "latest"):
        raise ValueError("must be pinned to a version tag or a sha256 digest, never 'latest'")
    return reference


PinnedImage = Annotated[str, AfterValidator(_pinned)]
"""An image reference pinned to a tag (not `latest`) or a digest."""


def _not_a_boolean(value: Any) -> Any:
    # pydantic reads true/false as 1/0 for an integer; a port or a size is never a yes/no.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


MemoryMb = Annotated[int, BeforeValidator(_not_a_boolean), Field(ge=64, le=65536)]
"""A container memory limit in MiB."""

CpuShares = Annotated[
    int,
    BeforeValidator(_not_a_boolean),
    Field(
        ge=2,
        le=262144,
        description="CPU weight against the other containers when the host's cores are all busy "
        "(Docker's default is 1024)",
    ),
]
"""A container's relative CPU weight (Docker's `--cpu-shares`): it only matters under contention,
so unlike a hard `--cpus` cap it never slows a service on an idle host nor fails on a small one."""

Port = Annotated[int, BeforeValidator(_not_a_boolean), Field(ge=1, le=65535)]
"""A TCP port number."""

DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
"""One label of a DNS name, lower case."""


def image_repository(reference: str) -> str:
    """The repository part of a pinned reference: 'mariadb' for 'mariadb:11.4.8'."""
    match = _PINNED_IMAGE.match(reference)
    return match.group("repository") if match else reference


@dataclass(frozen=True)
class Problem:
    """One broken rule: the stack key, the offending value (never a secret) and the rule."""

    key: str
    value: Any
    rule: str

    def __str__(self) -> str:
        return f"{self.key} = {_show(self.value)}: {self.rule}"


def _show(value: Any) -> str:
    if value is None:
        return "(missing)"
    if value == SECRET_SHOWN_AS:
        return SECRET_SHOWN_AS
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."

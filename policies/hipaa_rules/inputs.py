"""Reading resource inputs the way the engine hands them over, provider defaults included.

Values may be runtime proxies (Mappings, Sequences) whose unknown entries raise
UnknownValueError when read; these readers never assume plain dicts or lists.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy.proxy import UnknownValueError

from .framework import BUILT_IMAGE, REMOTE_IMAGE

SERVICE_LABEL = "hospital.service"
ZONE_LABEL = "hospital.zone"
DATA_CLASS_LABEL = "hospital.data-class"

# Image names (the last path segment, without tag or digest) that identify a service when a
# container carries no service label; `hospital-backup` is the image the backup job builds.
IMAGE_SERVICES = {
    "mariadb": "database",
    "mysql": "database",
    "openemr": "emr",
    "orthanc": "pacs",
    "orthanc-plugins": "pacs",
    "nginx": "gateway",
    "nginx-unprivileged": "gateway",
    "velociraptor": "edr",
    "velociraptor-server": "edr",
    "hospital-backup": "backup",
}

ANY_ADDRESS = {"0.0.0.0", "::", ""}


def sequence(props: Mapping[str, Any], key: str) -> Sequence[Any]:
    """A list input, empty when absent."""
    value = props.get(key)
    if value is None or isinstance(value, str):
        return ()
    return value


def mapping(props: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """An object input, empty when absent."""
    value = props.get(key)
    return value if isinstance(value, Mapping) else {}


def known_items(items: Sequence[Any]) -> Iterator[Any]:
    """The elements of a list whose value is known; unknown ones cannot break a rule yet."""
    for index in range(len(items)):
        try:
            yield items[index]
        except UnknownValueError:
            continue


def every_item(items: Sequence[Any]) -> list[Any]:
    """Every element of a list; an unknown one raises UnknownValueError, as the engine expects.

    Rules that demand something be present read with this: an unknown element might be it.
    Rules that forbid something read `known_items`: an unknown element cannot break them yet.
    """
    return [items[index] for index in range(len(items))]


def label(props: Mapping[str, Any], key: str) -> str | None:
    """The value of a Docker label (`labels: [{label, value}]`), None when absent or empty.

    A known entry for `key` decides; otherwise an unknown entry raises UnknownValueError, as it
    might be that label.
    """
    entries = sequence(props, "labels")
    pending: UnknownValueError | None = None
    for index in range(len(entries)):
        try:
            entry = entries[index]
        except UnknownValueError as error:
            pending = error
            continue
        if isinstance(entry, Mapping) and entry.get("label") == key:
            value = entry.get("value")
            return str(value) if value else None
    if pending is not None:
        raise pending
    return None


def require_known(items: Sequence[Any]) -> None:
    """Raise UnknownValueError when any element of a list is unknown.

    A rule whose demand the known elements do not meet calls this before reporting: an
    unknown element might be the one it asks for.
    """
    every_item(items)


def image_service(reference: str) -> str | None:
    """The service an image reference (`registry/owner/name:tag@digest`) is recognised as."""
    path = reference.split("@", 1)[0]
    name = path.rsplit("/", 1)[-1].split(":", 1)[0]
    return IMAGE_SERVICES.get(name.lower())


def service(props: Mapping[str, Any], image_names: Mapping[str, str] | None = None) -> str | None:
    """The hospital service a container runs: its `hospital.service` label, else its image.

    A container's `image` input is usually an image id (`sha256:...`), which names nothing;
    stack rules pass `image_names` (id -> reference, from `image_references`) to resolve it.
    None when neither identifies the service; UnknownValueError when the label or the image
    that would decide it is unknown.
    """
    labelled = label(props, SERVICE_LABEL)
    if labelled:
        return labelled
    image = str(props.get("image", ""))
    return image_service((image_names or {}).get(image, image))


def image_references(resources: Iterable[Any]) -> dict[str, str]:
    """Image id or digest -> the reference it was pulled or built as, from the stack's image
    resources (RemoteImage `name`, Image `imageName`); unknown outputs are left out."""
    references: dict[str, str] = {}
    for resource in resources:
        key = {REMOTE_IMAGE: "name", BUILT_IMAGE: "imageName"}.get(resource.resource_type)
        if key is None:
            continue
        for output in (key, "imageId", "repoDigest"):
            try:
                references[str(resource.props[output])] = str(resource.props[key])
            except (KeyError, UnknownValueError):
                continue
    return references


def environment(props: Mapping[str, Any], complete: bool = False) -> dict[str, str]:
    """`envs` (`["K=V", ...]`) as a dict. Values may be secret.

    `complete=True` is for judging a variable's absence: an unknown entry then raises.
    """
    entries = sequence(props, "envs")
    variables: dict[str, str] = {}
    for entry in every_item(entries) if complete else known_items(entries):
        name, _, value = str(entry).partition("=")
        variables[name] = value
    return variables


def published_ports(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The known `ports` entries; each publishes `internal` on the host at `ip:external`."""
    return [port for port in known_items(sequence(props, "ports")) if isinstance(port, Mapping)]


def published_port_count(props: Mapping[str, Any]) -> int:
    """How many ports a container publishes; an entry not known yet still publishes one."""
    return len(sequence(props, "ports"))


def host_address(port: Mapping[str, Any]) -> str:
    """The host address a port binds to; the provider default is every interface."""
    return str(port.get("ip", "0.0.0.0"))


def host_port(port: Mapping[str, Any]) -> int | None:
    """The host-side port number; None when `external` is absent (or 0): Docker then
    publishes on an ephemeral port it picks (32768 and up by default), never below 1024."""
    number = int(port.get("external", 0))
    return number or None


def host_port_text(port: Mapping[str, Any]) -> str:
    """How a message names the host side of a published port: `port 443`, `an ephemeral port`."""
    number = host_port(port)
    return f"port {number}" if number else "an ephemeral port"


def is_loopback(address: str) -> bool:
    return address == "::1" or address.startswith("127.")


def uploads_text(props: Mapping[str, Any], *suffixes: str) -> Iterator[tuple[str, str]]:
    """(container path, text) of every upload given inline as `content`, limited to paths
    ending in `suffixes` when given. Only the contents read can raise on an unknown value, so
    a key not yet generated during preview does not stop a rule that reads config files.
    """
    for upload in every_item(sequence(props, "uploads")):
        path = str(upload.get("file", ""))
        if suffixes and not path.endswith(suffixes):
            continue
        content = upload.get("content")
        if isinstance(content, str):
            yield path, content


def network_names(props: Mapping[str, Any], complete: bool = False) -> list[str]:
    """Names of the user-defined networks a container joins; unknown ones skipped unless
    `complete=True`, which raises on them."""
    names = []
    for attachment in every_item(sequence(props, "networksAdvanced")):
        try:
            names.append(str(attachment["name"]))
        except UnknownValueError:
            if complete:
                raise
        except KeyError:
            continue
    return names


def command_line(props: Mapping[str, Any]) -> list[str]:
    """The container's entrypoint and command arguments that are known."""
    words = [str(word) for word in known_items(sequence(props, "entrypoint"))]
    return words + [str(word) for word in known_items(sequence(props, "command"))]

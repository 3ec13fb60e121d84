"""Reading resource inputs the way the engine hands them over, provider defaults included.

Values may be runtime proxies (Mappings, Sequences) whose unknown entries raise
UnknownValueError when read; these readers never assume plain dicts or lists.
"""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy.proxy import UnknownValueError

SERVICE_LABEL = "hospital.service"
ZONE_LABEL = "hospital.zone"
DATA_CLASS_LABEL = "hospital.data-class"

# Image repositories that identify a service when a container carries no service label.
SERVICE_IMAGES = {
    "mariadb": "database",
    "mysql": "database",
    "openemr": "emr",
    "orthanc": "pacs",
    "nginx": "gateway",
    "velociraptor": "edr",
    "backup": "backup",
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
    """The value of a Docker label (`labels: [{label, value}]`), None when absent."""
    for entry in known_items(sequence(props, "labels")):
        if isinstance(entry, Mapping) and entry.get("label") == key:
            return str(entry.get("value"))
    return None


def service(props: Mapping[str, Any], image_reference: str = "") -> str | None:
    """The hospital service a container runs: its label, else a guess from the image."""
    labelled = label(props, SERVICE_LABEL)
    if labelled:
        return labelled
    repository = image_reference.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    for fragment, name in SERVICE_IMAGES.items():
        if fragment in repository:
            return name
    return None


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
    """The `ports` entries; each publishes `internal` on the host at `ip:external`."""
    return [port for port in known_items(sequence(props, "ports")) if isinstance(port, Mapping)]


def host_address(port: Mapping[str, Any]) -> str:
    """The host address a port binds to; the provider default is every interface."""
    return str(port.get("ip", "0.0.0.0"))


def host_port(port: Mapping[str, Any]) -> int:
    """The host-side port number; Docker picks the internal number when none is given."""
    return int(port.get("external", port.get("internal", 0)))


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

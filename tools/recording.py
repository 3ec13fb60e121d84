"""What one offline run of the program registered: resources, exports, secrecy and logs.

Values are plain Python (secrets unwrapped); which parts were secret is kept as dotted paths.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime.rpc import UNKNOWN

REDACTED = "[secret]"
UNKNOWN_MARK = "[unknown]"


def join_path(prefix: str, key: object) -> str:
    """Dotted path of `key` under `prefix`: `uploads` + 0 -> `uploads.0`."""
    return str(key) if not prefix else f"{prefix}.{key}"


def _covers(paths: frozenset[str], path: str) -> bool:
    """True when `path` or one of its ancestors is in `paths`."""
    parts = path.split(".")
    return any(".".join(parts[:depth]) in paths for depth in range(1, len(parts) + 1))


def _touches(paths: frozenset[str], path: str) -> bool:
    """True when `path`, an ancestor or a descendant of it is in `paths`."""
    return _covers(paths, path) or any(p.startswith(path + ".") for p in paths)


def value_at(document: Any, path: str) -> Any:
    """The value at dotted `path` in nested dicts/lists; KeyError naming the path if absent."""
    current = document
    for part in path.split(".") if path else []:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise KeyError(path)
    return current


def redact(value: Any, secret_paths: frozenset[str], prefix: str = "") -> Any:
    """A copy of `value` with every secret part as `[secret]`, unknowns as `[unknown]`."""
    if prefix in secret_paths:
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, secret_paths, join_path(prefix, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secret_paths, join_path(prefix, i)) for i, v in enumerate(value)]
    if value == UNKNOWN:
        return UNKNOWN_MARK
    if isinstance(value, float) and value.is_integer():
        # Numbers cross the wire as doubles; print 8443 as `pulumi stack output --json` does.
        return int(value)
    return value


def secret_strings(value: Any, secret_paths: frozenset[str], prefix: str = "") -> Iterator[str]:
    """Every string leaf of `value` that sits at or below a secret path."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from secret_strings(item, secret_paths, join_path(prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from secret_strings(item, secret_paths, join_path(prefix, index))
    elif isinstance(value, str) and value and value != UNKNOWN and _covers(secret_paths, prefix):
        yield value


@dataclass(frozen=True)
class RecordedResource:
    """One registered resource as the engine would have seen it.

    :param type: type token, e.g. `docker:index/container:Container`.
    :param name: logical name given in the program.
    :param urn: mock URN (never hard-code it: nesting differs from the engine's).
    :param parent: URN of the parent, None for children of the stack.
    :param custom: False for component resources.
    :param dependencies: URNs from `depends_on` and from the Outputs used as inputs.
    :param property_dependencies: input name -> URNs that input depends on.
    :param inputs: camelCase inputs as the provider receives them, secrets unwrapped.
    :param outputs: the stand-in provider's state (components: registered outputs).
    :param secret_inputs: dotted paths into `inputs` that were secret.
    :param secret_outputs: dotted paths into `outputs` that are secret.
    :param options: protect, retainOnDelete, ignoreChanges, additionalSecretOutputs, ...
    :param id: the stand-in's physical id ("" for components).
    """

    type: str
    name: str
    urn: str
    parent: str | None
    custom: bool
    dependencies: tuple[str, ...]
    property_dependencies: Mapping[str, tuple[str, ...]]
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    secret_inputs: frozenset[str]
    secret_outputs: frozenset[str]
    options: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""

    def __repr__(self) -> str:
        # Values stay out of the repr: a failing assertion must not print a secret.
        return f"RecordedResource({self.type} {self.name!r})"

    def input_is_secret(self, path: str) -> bool:
        """True when the input at dotted `path` (or a value containing it) was secret."""
        return _covers(self.secret_inputs, path)

    def input_holds_secret(self, path: str) -> bool:
        """True when any part of the input at `path` was secret."""
        return _touches(self.secret_inputs, path)

    def output_is_secret(self, path: str) -> bool:
        """True when the output at dotted `path` (or a value containing it) is secret."""
        return _covers(self.secret_outputs, path)

    def input(self, path: str, default: Any = None) -> Any:
        """The input at dotted `path` (`healthcheck.interval`), `default` when unset."""
        try:
            return value_at(self.inputs, path)
        except KeyError:
            return default

    def output(self, path: str, default: Any = None) -> Any:
        """The output at dotted `path`, `default` when absent."""
        try:
            return value_at(self.outputs, path)
        except KeyError:
            return default

    def redacted(self) -> dict[str, Any]:
        """JSON-ready view of this resource with every secret value as `[secret]`."""
        return {
            "type": self.type,
            "name": self.name,
            "urn": self.urn,
            "id": self.id,
            "parent": self.parent,
            "custom": self.custom,
            "dependencies": list(self.dependencies),
            "propertyDependencies": {k: list(v) for k, v in self.property_dependencies.items()},
            "options": dict(self.options),
            "inputs": redact(self.inputs, self.secret_inputs),
            "outputs": redact(self.outputs, self.secret_outputs),
            "secretInputs": sorted(self.secret_inputs),
            "secretOutputs": sorted(self.secret_outputs),
        }


@dataclass(frozen=True)
class RecordedExport:
    """One stack output: `secret` when the whole value is secret, else the secret sub-paths."""

    name: str
    value: Any
    secret_paths: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"RecordedExport({self.name!r}, secret={self.secret})"

    @property
    def secret(self) -> bool:
        return "" in self.secret_paths

    def holds_secret(self) -> bool:
        """True when the export or any part of it is secret."""
        return bool(self.secret_paths)

    def redacted(self) -> Any:
        if self.secret:
            return REDACTED
        return redact(self.value, self.secret_paths)


@dataclass(frozen=True)
class LogEntry:
    """A `pulumi.log` message the program emitted (severity: debug|info|warning|error)."""

    severity: str
    message: str


@dataclass(frozen=True)
class UploadedFile:
    """A file a container reads from uploads, and the container that carries the upload."""

    file: str
    content: str = field(repr=False)
    secret: bool
    holder: RecordedResource


@dataclass
class Recording:
    """Everything one run registered, in parent-first order.

    :param project: project name.
    :param stack: stack name.
    :param resources: every resource the program registered.
    :param exports: stack outputs by name.
    :param logs: `pulumi.log` messages at info level and above.
    :param config_secrets: plaintexts of secret config values, for leak scans.

    Its repr and its parts' reprs show no values, so a failing test prints no secret.
    """

    project: str
    stack: str
    resources: list[RecordedResource] = field(default_factory=list)
    exports: dict[str, RecordedExport] = field(default_factory=dict)
    logs: list[LogEntry] = field(default_factory=list)
    config_secrets: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        return (
            f"Recording(stack={self.stack!r}, {len(self.resources)} resources, "
            f"exports={sorted(self.exports)})"
        )

    def of_type(self, type_token: str) -> list[RecordedResource]:
        """All resources of one type token, e.g. `docker:index/network:Network`."""
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str, type_token: str | None = None) -> RecordedResource:
        """The one resource with this logical name (and type, when names repeat)."""
        matches = [
            r
            for r in self.resources
            if r.name == name and (type_token is None or r.type == type_token)
        ]
        if len(matches) != 1:
            known = ", ".join(sorted({r.name for r in self.resources}))
            raise KeyError(
                f"{len(matches)} resources named {name!r}"
                + (f" of type {type_token}" if type_token else "")
                + f"; names recorded: {known}"
            )
        return matches[0]

    def started_containers(self) -> list[RecordedResource]:
        """The containers that run: every container but the file carriers (`start=False`)."""
        return [
            r
            for r in self.of_type("docker:index/container:Container")
            if r.inputs.get("start") is not False
        ]

    def uploaded_files(self, container: RecordedResource) -> list[UploadedFile]:
        """Every file `container` reads from uploads: its own, then those of each file carrier
        it takes volumes from (`fromContainer`, a container name with `:ro`)."""
        holders = [container]
        for volume in container.inputs.get("volumes") or []:
            source = str(volume.get("fromContainer") or "")
            if source:
                name = source.rpartition(":")[0] if source.endswith((":ro", ":rw")) else source
                holders += [
                    r
                    for r in self.of_type(container.type)
                    if r.inputs.get("name") == name and r is not container
                ]
        return [
            UploadedFile(
                upload["file"],
                upload.get("content", ""),
                holder.input_is_secret(f"uploads.{index}.content"),
                holder,
            )
            for holder in holders
            for index, upload in enumerate(holder.inputs.get("uploads") or [])
        ]

    def by_urn(self, urn: str) -> RecordedResource:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise KeyError(urn)

    def children(self, parent: RecordedResource | None) -> list[RecordedResource]:
        """Direct children of `parent`; None gives the top-level resources."""
        parent_urn = parent.urn if parent else None
        return [r for r in self.resources if r.parent == parent_urn]

    def descendants(self, ancestor: RecordedResource) -> list[RecordedResource]:
        """Every resource below `ancestor` in the component tree."""
        found: list[RecordedResource] = []
        for child in self.children(ancestor):
            found.append(child)
            found.extend(self.descendants(child))
        return found

    def parent_of(self, resource: RecordedResource) -> RecordedResource | None:
        return self.by_urn(resource.parent) if resource.parent else None

    def export(self, name: str) -> Any:
        """The unwrapped value of one stack output."""
        return self.exports[name].value

    def secret_values(self) -> Iterator[str]:
        """Every secret string this run produced or consumed, for leak scans."""
        seen: set[str] = set()
        candidates: list[str] = list(self.config_secrets)
        for resource in self.resources:
            candidates.extend(secret_strings(resource.inputs, resource.secret_inputs))
            candidates.extend(secret_strings(resource.outputs, resource.secret_outputs))
        for export in self.exports.values():
            candidates.extend(secret_strings(export.value, export.secret_paths))
        for value in candidates:
            if value not in seen:
                seen.add(value)
                yield value

    def plain_strings(self) -> Iterator[tuple[str, str]]:
        """(where, string) for every non-secret string in exports and resource outputs."""
        for export in self.exports.values():
            for where, text in _plain_leaves(export.value, export.secret_paths, ""):
                yield f"export {join_path(export.name, where) if where else export.name}", text
        for resource in self.resources:
            for where, text in _plain_leaves(resource.outputs, resource.secret_outputs, ""):
                yield f"{resource.name} ({resource.type}) output {where}", text

    def redacted(self) -> dict[str, Any]:
        """JSON-ready view of the whole run with every secret value as `[secret]`."""
        return {
            "project": self.project,
            "stack": self.stack,
            "resources": [r.redacted() for r in self.resources],
            "exports": {
                name: {"value": e.redacted(), "secret": e.secret}
                for name, e in sorted(self.exports.items())
            },
            "logs": [{"severity": e.severity, "message": e.message} for e in self.logs],
        }


def _plain_leaves(value: Any, secret_paths: frozenset[str], path: str) -> Iterator[tuple[str, str]]:
    if path in secret_paths:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _plain_leaves(item, secret_paths, join_path(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _plain_leaves(item, secret_paths, join_path(path, index))
    elif isinstance(value, str) and value != UNKNOWN:
        yield path, value

"""A mock resource monitor that records every registration the way the engine receives it.

It keeps parents, dependencies, raw camelCase inputs and exact secret paths, applies
`additional_secret_outputs` and input secrecy to outputs, and refuses duplicate URNs.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from google.protobuf import empty_pb2, struct_pb2
from pulumi import RunError
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from tools.recording import RecordedResource, join_path

STACK_TYPE = "pulumi:pulumi:Stack"


class DuplicateUrnError(RunError):
    """Two resources share one URN: the engine refuses this, so the preview does too."""

    def __init__(self, urn: str) -> None:
        super().__init__(f"duplicate resource URN {urn}: give each resource a unique name")
        self.urn = urn
        self.problems = [str(self)]


def decode_wire(value: Any, path: str, secret_paths: set[str]) -> Any:
    """Plain Python from a protobuf Struct/ListValue, noting the dotted path of each secret.

    Unlike `rpc.deserialize_properties`, a secret list element stays at its own path
    (`envs.3`) instead of making its whole parent secret. Resource references become URNs.
    """
    if isinstance(value, struct_pb2.ListValue):
        return [decode_wire(item, join_path(path, i), secret_paths) for i, item in enumerate(value)]
    if isinstance(value, struct_pb2.Struct):
        fields = value.fields
        signature = value[rpc._special_sig_key] if rpc._special_sig_key in fields else None
        if signature == rpc._special_secret_sig:
            secret_paths.add(path)
            return decode_wire(value["value"], path, secret_paths)
        if signature == rpc._special_output_value_sig:
            if "secret" in fields and value["secret"]:
                secret_paths.add(path)
            return decode_wire(value["value"], path, secret_paths) if "value" in fields else None
        if signature == rpc._special_resource_sig:
            return value["urn"]
        if signature is not None:
            # Assets and archives: keep their descriptive fields (text, path, uri, assets).
            return {
                key: decode_wire(item, join_path(path, key), secret_paths)
                for key, item in value.items()
                if key != rpc._special_sig_key
            }
        decoded = {}
        for key, item in value.items():
            plain = decode_wire(item, join_path(path, key), secret_paths)
            if plain is not None:
                decoded[key] = plain
        return decoded
    return value


def unwrap_secrets(value: Any, path: str, secret_paths: set[str]) -> Any:
    """Plain Python from a mock's state, where secrets are `rpc.wrap_rpc_secret` dicts."""
    if rpc.is_rpc_secret(value):
        secret_paths.add(path)
        return unwrap_secrets(value["value"], path, secret_paths)
    if isinstance(value, Mapping):
        return {k: unwrap_secrets(v, join_path(path, k), secret_paths) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unwrap_secrets(v, join_path(path, i), secret_paths) for i, v in enumerate(value)]
    return value


def wrap_secrets(value: Any, secret_paths: set[str] | frozenset[str], path: str = "") -> Any:
    """The inverse of `unwrap_secrets`: wrap every value found at a secret path."""
    if path and path in secret_paths:
        return rpc.wrap_rpc_secret(value)
    if isinstance(value, Mapping):
        return {k: wrap_secrets(v, secret_paths, join_path(path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [wrap_secrets(v, secret_paths, join_path(path, i)) for i, v in enumerate(value)]
    return value


def _has_path(document: Any, path: str) -> bool:
    current = document
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False
    return True


def _options(request: Any) -> dict[str, Any]:
    """The resource options a policy or a reader may care about, in engine names."""
    options: dict[str, Any] = {
        "protect": bool(request.protect),
        "retainOnDelete": bool(request.retainOnDelete),
    }
    if request.deleteBeforeReplaceDefined:
        options["deleteBeforeReplace"] = bool(request.deleteBeforeReplace)
    for name in ("ignoreChanges", "replaceOnChanges", "additionalSecretOutputs", "aliasURNs"):
        if getattr(request, name):
            options[name] = list(getattr(request, name))
    if request.provider:
        options["provider"] = request.provider
    if request.deletedWith:
        options["deletedWith"] = request.deletedWith
    if request.importId:
        options["import"] = request.importId
    timeouts = request.customTimeouts
    if timeouts.create or timeouts.update or timeouts.delete:
        options["customTimeouts"] = {
            k: getattr(timeouts, k) for k in ("create", "update", "delete") if getattr(timeouts, k)
        }
    return options


class RecordingMonitor(MockMonitor):
    """MockMonitor that hands each registration to `mocks` and keeps a RecordedResource.

    The mocks receive plain inputs (secrets unwrapped); a mock marks secret outputs with
    `pulumi.runtime.rpc.wrap_rpc_secret`. Components are passed to the mocks too.
    """

    # Limitation: `Resource.get` reads (ReadResource) go to the base class unrecorded; the
    # program creates everything it manages, so a read would be an outside dependency.

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.stack_urn: str | None = None
        self.recorded: list[RecordedResource] = []
        self.component_outputs: dict[str, tuple[dict[str, Any], frozenset[str]]] = {}
        self._lock = threading.Lock()
        # URN -> set once its registration is recorded, so that a duplicate raised on another
        # thread never races ahead of the first registration's record.
        self._claimed: dict[str, threading.Event] = {}

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == STACK_TYPE:
            self.stack_urn = urn
            return resource_pb2.RegisterResourceResponse(urn=urn)

        _ensure_event_loop()
        with self._lock:
            first = self._claimed.get(urn)
            if first is None:
                self._claimed[urn] = threading.Event()
        if first is not None:
            first.wait(timeout=30)
            raise DuplicateUrnError(urn)
        try:
            return self._register(urn, request)
        finally:
            self._claimed[urn].set()

    def _register(self, urn: str, request: Any) -> Any:
        """Hand one claimed registration to the mocks and record it."""

        secret_inputs: set[str] = set()
        inputs = decode_wire(request.object, "", secret_inputs)
        args = MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=copy.deepcopy(inputs),
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        resource_id, state = self.mocks.new_resource(args)
        if not request.custom:
            resource_id = ""

        secret_outputs: set[str] = set()
        outputs = unwrap_secrets(state or {}, "", secret_outputs)
        # Declared secret outputs stay secret even while unknown, as the engine keeps them.
        secret_outputs.update(request.additionalSecretOutputs)
        secret_outputs.update(p for p in secret_inputs if _has_path(outputs, p))
        wire_state = wrap_secrets(outputs, secret_outputs)
        object_proto = _sync_await(rpc.serialize_properties(wire_state, {}))

        recorded = RecordedResource(
            type=request.type,
            name=request.name,
            urn=urn,
            parent=request.parent if request.parent and request.parent != self.stack_urn else None,
            custom=bool(request.custom),
            dependencies=tuple(request.dependencies),
            property_dependencies={
                key: tuple(deps.urns) for key, deps in request.propertyDependencies.items()
            },
            inputs=inputs,
            outputs=outputs,
            secret_inputs=frozenset(secret_inputs),
            secret_outputs=frozenset(secret_outputs),
            options=_options(request),
            id=resource_id or "",
        )
        with self._lock:
            self.resources[urn] = MockMonitor.ResourceRegistration(urn, resource_id, wire_state)
            self.recorded.append(recorded)
        return resource_pb2.RegisterResourceResponse(
            urn=urn, id=resource_id or "", object=object_proto
        )

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if request.urn != self.stack_urn:
            secret_paths: set[str] = set()
            outputs = decode_wire(request.outputs, "", secret_paths)
            with self._lock:
                self.component_outputs[request.urn] = (outputs, frozenset(secret_paths))
        return empty_pb2.Empty()

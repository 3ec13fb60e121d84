"""Stack files to the SDK's config map: what `pulumi config` would hand the program.

Pulumi passes every value as a string; objects and lists travel JSON-encoded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The C loader parses the same safe subset several times faster, when libyaml is present.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StackConfigError(Exception):
    """A stack file, project file or secrets file that cannot become a config map."""


@dataclass(frozen=True)
class StackConfig:
    """The config map of one stack, ready for `pulumi.runtime.set_all_config`.

    :param project: the project name from Pulumi.yaml (the default config namespace).
    :param values: full key (`hospital:zones`) -> string value as the SDK expects it.
    :param secret_keys: keys whose value came from a `secure:` entry.
    :param secret_values: the plaintexts behind those keys, for leak scans.
    """

    project: str
    values: dict[str, str]
    secret_keys: frozenset[str] = frozenset()
    secret_values: tuple[str, ...] = field(default=(), repr=False)


def load_stack_config(
    project_dir: Path, stack_file: Path, secrets_file: Path | None = None
) -> StackConfig:
    """Read Pulumi.yaml defaults, the stack file and an optional plaintext secrets file.

    A `secure:` value cannot be decrypted without the engine; its plaintext must come
    from the secrets file, a YAML map of config key (`hospital:ca.key` or the dotted path
    of a nested value) to plaintext. Example::

        load_stack_config(Path("."), Path("Pulumi.prod.yaml"), Path("prod-secrets.yaml"))
    """
    project = _read_project_name(project_dir / "Pulumi.yaml")
    plaintexts = _read_secrets_file(secrets_file, project) if secrets_file else {}

    raw: dict[str, Any] = _project_defaults(project_dir / "Pulumi.yaml", project)
    stack_document = _read_yaml(stack_file)
    stack_entries = stack_document.get("config") or {}
    if not isinstance(stack_entries, Mapping):
        raise StackConfigError(f"{stack_file}: `config` must be a map of key to value")
    for key, value in stack_entries.items():
        raw[_full_key(str(key), project)] = value

    values: dict[str, str] = {}
    secret_keys: set[str] = set()
    secret_values: list[str] = []
    for key, value in raw.items():
        resolved, was_secure = _resolve_secure(key, value, plaintexts, stack_file, secret_values)
        values[key] = _to_config_string(resolved)
        if was_secure:
            secret_keys.add(key)
    return StackConfig(project, values, frozenset(secret_keys), tuple(secret_values))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except FileNotFoundError as missing:
        raise StackConfigError(f"{path}: no such file") from missing
    except yaml.YAMLError as broken:
        # Only the position: PyYAML's own message quotes the line, which may hold a secret.
        mark = getattr(broken, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StackConfigError(f"{path}: not valid YAML{where}") from None
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise StackConfigError(f"{path}: expected a YAML map at the top level")
    return dict(document)


def _read_project_name(project_file: Path) -> str:
    name = _read_yaml(project_file).get("name")
    if not isinstance(name, str) or not name:
        raise StackConfigError(f"{project_file}: `name` is missing")
    return name


def _project_defaults(project_file: Path, project: str) -> dict[str, Any]:
    """Project-level `config:` entries: a plain value, or a schema with `default`/`value`."""
    declared = _read_yaml(project_file).get("config") or {}
    defaults: dict[str, Any] = {}
    for key, entry in declared.items():
        if isinstance(entry, Mapping) and ("default" in entry or "value" in entry):
            defaults[_full_key(str(key), project)] = entry.get("value", entry.get("default"))
        elif not isinstance(entry, Mapping) or "secure" in entry:
            defaults[_full_key(str(key), project)] = entry
    return defaults


def _read_secrets_file(path: Path, project: str) -> dict[str, Any]:
    document = _read_yaml(path)
    return {_full_key(str(key), project): value for key, value in document.items()}


def _full_key(key: str, project: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _resolve_secure(
    path: str,
    value: Any,
    plaintexts: Mapping[str, Any],
    stack_file: Path,
    secret_values: list[str],
) -> tuple[Any, bool]:
    """Replace every `{secure: ...}` under `path` by its plaintext; say if any was found."""
    if isinstance(value, Mapping) and set(value) == {"secure"}:
        if path not in plaintexts:
            raise StackConfigError(
                f"{path} in {stack_file} is encrypted (`secure:`) and cannot be decrypted "
                f"offline; give its plaintext with --secrets FILE (a YAML map of key to "
                f"plaintext)"
            )
        plaintext = plaintexts[path]
        secret_values.extend(_strings_in(plaintext))
        return plaintext, True
    if isinstance(value, Mapping):
        found = False
        resolved: dict[str, Any] = {}
        for key, item in value.items():
            resolved[key], nested = _resolve_secure(
                f"{path}.{key}", item, plaintexts, stack_file, secret_values
            )
            found = found or nested
        return resolved, found
    if isinstance(value, list):
        found = False
        items = []
        for index, item in enumerate(value):
            resolved_item, nested = _resolve_secure(
                f"{path}.{index}", item, plaintexts, stack_file, secret_values
            )
            items.append(resolved_item)
            found = found or nested
        return items, found
    return value, False


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings_in(item)]
    return []


def _to_config_string(value: Any) -> str:
    """Encode a YAML value the way the Pulumi CLI hands it to a program."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, default=str)

"""The settings reference of the README, generated from the settings models themselves.

`python -m tools settings-reference` prints the Markdown table; `--check README.md` fails when
the README's copy (between the two marker comments) is out of date, `--write` renews it.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from components.settings import CA_PRIVATE_KEY, NAMESPACE, Settings

BEGIN = "<!-- settings-reference:begin -->"
END = "<!-- settings-reference:end -->"


def reference_rows() -> Iterator[tuple[str, str, str, str]]:
    """(key, type, default, rule) for every stack key, depth first."""
    yield from _rows(Settings, f"{NAMESPACE}:")
    yield (
        f"`{NAMESPACE}:{CA_PRIVATE_KEY}`",
        "secret PEM",
        "",
        "the hospital CA's private key; set with `pulumi config set --secret`",
    )


def render_reference() -> str:
    lines = ["| key | type | default | rule |", "|---|---|---|---|"]
    lines += [
        f"| {key} | {kind} | {default} | {rule} |" for key, kind, default, rule in reference_rows()
    ]
    return "\n".join(lines)


def _rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str, str]]:
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        nested = _nested_model(annotation)
        rule = _rule(field)
        if nested is not None and not rule:
            rule = (nested[0].__doc__ or "").strip().splitlines()[0]
        yield f"`{key}`", _type_name(annotation), _default(field), rule
        if nested is not None:
            model_type, suffix = nested
            yield from _rows(model_type, f"{key}{suffix}.")


def _nested_model(annotation: Any) -> tuple[type[BaseModel], str] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict and _is_model(args[1]):
        return args[1], ".<name>"
    if origin is tuple and args and _is_model(args[0]):
        return args[0], "[]"
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " \\| ".join(f"`{json.dumps(arg)}`" for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args if arg is not type(None)) + " (optional)"
    if origin is dict:
        return f"map of {_type_name(args[1])}"
    if origin in (tuple, frozenset, list):
        return f"list of {_type_name(args[0])}"
    if _is_model(annotation):
        return "object"
    names = {
        ipaddress.IPv4Network: "IPv4 network",
        ipaddress.IPv4Address: "IPv4 address",
        bool: "boolean",
        int: "integer",
        str: "string",
    }
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None or value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, tuple | frozenset | list | dict) and not value:
        return "none"
    if isinstance(value, frozenset):
        value = sorted(value)
    return f"`{json.dumps(value, default=str)}`"


def _rule(field: FieldInfo) -> str:
    parts = [field.description] if field.description else []
    for constraint in field.metadata:
        for attribute, words in (
            ("ge", "≥"),
            ("le", "≤"),
            ("min_length", "length ≥"),
            ("max_length", "length ≤"),
        ):
            value = getattr(constraint, attribute, None)
            if value is not None:
                parts.append(f"{words} {value}")
        check = getattr(constraint, "func", None)
        if check is not None and check.__doc__:
            parts.append(check.__doc__.strip().splitlines()[0])
        pattern = getattr(constraint, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`".replace("|", "\\|"))
    return "; ".join(parts)


NAME = "settings-reference"
HELP = "print the stack settings reference, or check/write the README's copy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", type=Path, help="fail when this file's copy is stale")
    parser.add_argument("--write", type=Path, help="replace this file's copy")


def run(args: argparse.Namespace) -> int:
    table = render_reference()
    if not (args.check or args.write):
        print(table)
        return 0
    path = args.check or args.write
    text = path.read_text()
    if BEGIN not in text or END not in text:
        print(f"{path}: missing the {BEGIN} / {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{BEGIN}\n{table}\n{END}{tail}"
    if args.write:
        path.write_text(updated)
        return 0
    if updated != text:
        print(
            f"{path}: the settings reference is stale; run "
            f"`python -m tools settings-reference --write {path}`",
            file=sys.stderr,
        )
        return 1
    return 0

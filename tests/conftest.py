"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.preview import run_program
from tools.recording import Recording

# --- preview: the throw-away toy program the offline preview's own tests run -------------

TOY_PROGRAM = Path(__file__).parent / "fixtures" / "toy_program"


@pytest.fixture(scope="session")
def toy_program_dir() -> Path:
    """Directory of the toy program (Pulumi.yaml, Pulumi.dev.yaml, __main__.py)."""
    return TOY_PROGRAM


@pytest.fixture(scope="session")
def toy_recording() -> Recording:
    """The toy program's dev stack, previewed once for the session."""
    return run_program("dev", project_dir=TOY_PROGRAM)


@pytest.fixture
def toy_stack_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a toy stack file: the committed dev config with some keys replaced or removed.

    Call it as `toy_stack_file(**{"toy:passwordLength": 8})`; a value of None drops the key.
    """

    def write(**changes: Any) -> Path:
        document = yaml.safe_load((TOY_PROGRAM / "Pulumi.dev.yaml").read_text())
        for key, value in changes.items():
            if value is None:
                document["config"].pop(key, None)
            else:
                document["config"][key] = value
        target = tmp_path / "Pulumi.dev.yaml"
        target.write_text(yaml.safe_dump(document))
        return target

    return write


# --- end of preview fixtures ----------------------------------------------------------------

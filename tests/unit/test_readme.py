"""The README stays true: its settings reference matches the settings models."""

from __future__ import annotations

import argparse
from pathlib import Path

from tools import settings_reference

README = Path(__file__).resolve().parents[2] / "README.md"


# Every stack key the models accept is documented, with its current default and rule.
def test_readme_settings_reference_is_current() -> None:
    args = argparse.Namespace(check=README, write=None)

    status = settings_reference.run(args)

    assert status == 0, "README settings reference is stale: run `make readme`"


# The two commands a new user needs are the ones the Makefile provides.
def test_readme_commands_exist_in_the_makefile() -> None:
    makefile = (README.parent / "Makefile").read_text()
    readme = README.read_text()

    for target in ("up", "test", "plan", "check", "docs"):
        assert f"make {target}" in readme, f"README does not mention make {target}"
        assert f"\n{target}:" in makefile, f"Makefile has no {target} target"

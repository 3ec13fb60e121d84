"""requirements.txt is all `pulumi up` installs into the program's virtualenv (Pulumi.yaml's
toolchain pip): every package the program imports must come from it or its dependencies."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What the program runs: its entry point, its components and the rule modules the compliance
# export reads its defaults from.
PROGRAM_SOURCES = [
    REPO / "__main__.py",
    *sorted((REPO / "components").glob("*.py")),
    *sorted((REPO / "policies" / "hipaa_rules").glob("*.py")),
]
LOCAL_PACKAGES = {"components", "policies"}
REQUIREMENT_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a file imports, at any depth of the file."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        match = REQUIREMENT_NAME.match(line.strip())
        if match and not line.strip().startswith("-"):
            names.add(normalise(match.group(1)))
    return names


def with_dependencies(names: set[str]) -> set[str]:
    """The distributions `names` install, following each one's unconditional requirements."""
    installed, pending = set(), list(names)
    while pending:
        name = pending.pop()
        if name in installed:
            continue
        installed.add(name)
        for requirement in metadata.requires(name) or []:
            if "extra ==" in requirement:
                continue
            match = REQUIREMENT_NAME.match(requirement)
            if match:
                pending.append(normalise(match.group(1)))
    return installed


# A package the program imports but requirements.txt does not bring fails `pulumi up` on a
# machine where Pulumi made the virtualenv from requirements.txt alone.
def test_requirements_txt_provides_every_package_the_program_imports() -> None:
    distributions = metadata.packages_distributions()
    provided = with_dependencies(requirement_names(REPO / "requirements.txt"))
    imported = set().union(*(imported_modules(path) for path in PROGRAM_SOURCES))
    third_party = imported - set(sys.stdlib_module_names) - LOCAL_PACKAGES - {"__future__"}

    missing = {
        module: sorted(distributions.get(module, ["(not installed)"]))
        for module in sorted(third_party)
        if not {normalise(d) for d in distributions.get(module, [])} & provided
    }

    assert third_party, "no third-party import found: the scan is broken"
    assert missing == {}, f"imported by the program but not in requirements.txt: {missing}"


# The program never reaches into the offline tools, which live in the dev requirements only.
def test_the_program_does_not_import_the_offline_tools() -> None:
    importers = [path.name for path in PROGRAM_SOURCES if "tools" in imported_modules(path)]

    assert importers == [], f"the program imports tools/ from {importers}"

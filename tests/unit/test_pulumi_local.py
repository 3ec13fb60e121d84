"""`make up` / `make preview` (scripts/pulumi-local.sh): plain refusals when the Pulumi CLI, the
Docker engine or a prod passphrase is missing, and the pack config each stack is judged by.

A copy of the script runs in a scratch project whose `pulumi` and `docker` are stand-ins that
record their arguments, so no CLI or engine is needed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECORDER = """#!/bin/sh
secret=${PULUMI_CONFIG_PASSPHRASE:+set}
echo "$(basename "$0") $* | backend=${PULUMI_BACKEND_URL:-} passphrase=$secret" >>"$CALLS"
exit "${EXIT_CODE:-0}"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch project: the script, the pack configs and the committed stack files."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "pulumi-local.sh", tmp_path / "scripts")
    shutil.copytree(REPO / "policies" / "config", tmp_path / "policies" / "config")
    for stack in ("dev", "prod"):
        shutil.copy(REPO / f"Pulumi.{stack}.yaml", tmp_path)
    return tmp_path


def tools_on_path(directory: Path, *names: str, docker_exit: int = 0) -> dict[str, str]:
    """An environment whose PATH holds recording stand-ins for `names` and the system tools."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        script = bin_dir / name
        code = docker_exit if name == "docker" else 0
        script.write_text(RECORDER.replace("${EXIT_CODE:-0}", str(code)))
        script.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(directory / "calls.log")}


def run(project: Path, env: dict[str, str], stack: str, action: str = "up"):
    return subprocess.run(
        ["bash", str(project / "scripts" / "pulumi-local.sh"), stack, action],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def calls(project: Path) -> list[str]:
    log = project / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


# Without the Pulumi CLI, `make up` says so and stops before touching anything.
def test_missing_pulumi_cli_is_named(project: Path) -> None:
    env = tools_on_path(project, "docker")

    result = run(project, env, "dev")

    assert result.returncode == 127, result
    assert "pulumi CLI is not installed" in result.stderr, result.stderr
    assert not (project / ".pulumi-state").exists(), "state was created without a CLI"


# Without a Docker engine that answers, `make up` says so and runs no pulumi command.
def test_missing_docker_engine_is_named(project: Path) -> None:
    env = tools_on_path(project, "pulumi", "docker", docker_exit=1)

    result = run(project, env, "dev")

    assert result.returncode == 69, result
    assert "no Docker engine answers" in result.stderr, result.stderr
    assert [line for line in calls(project) if line.startswith("pulumi")] == []


# Prod secrets are never protected by the lab's fixed passphrase.
def test_prod_needs_a_passphrase_of_its_own(project: Path) -> None:
    env = tools_on_path(project, "pulumi", "docker")

    result = run(project, env, "prod")

    assert result.returncode == 64, result
    assert "PULUMI_CONFIG_PASSPHRASE" in result.stderr, result.stderr


# Dev runs `pulumi up` on a file backend inside the project with its own advisory pack config.
def test_dev_up_uses_local_state_and_its_pack_config(project: Path) -> None:
    env = tools_on_path(project, "pulumi", "docker")

    result = run(project, env, "dev")

    assert result.returncode == 0, result.stderr
    up = [line for line in calls(project) if line.startswith("pulumi up")]
    assert up == [
        f"pulumi up --yes --policy-pack {project}/policies --policy-pack-config "
        f"{project}/policies/config/dev.json | backend=file://{project}/.pulumi-state "
        "passphrase=set"
    ], calls(project)


# A stack without a pack config of its own is judged by its environment's, as the offline gate
# judges it; one whose file names no environment falls back to prod's mandatory config.
@pytest.mark.parametrize(
    ("environment_line", "expected"),
    [
        ("  hospital:environment: dev\n", "dev.json"),
        ('  hospital:environment: "prod"\n', "prod.json"),
        ("", "prod.json"),
    ],
)
def test_other_stacks_take_their_environments_pack_config(
    project: Path, environment_line: str, expected: str
) -> None:
    committed = (REPO / "Pulumi.dev.yaml").read_text().replace("  hospital:environment: dev\n", "")
    (project / "Pulumi.lab2.yaml").write_text(
        committed.replace("config:\n", f"config:\n{environment_line}", 1)
    )
    env = {**tools_on_path(project, "pulumi", "docker"), "PULUMI_CONFIG_PASSPHRASE": "x" * 20}

    result = run(project, env, "lab2", "preview")

    assert result.returncode == 0, result.stderr
    [preview] = [line for line in calls(project) if line.startswith("pulumi preview")]
    assert f"--policy-pack-config {project}/policies/config/{expected} " in preview, preview


# An action the script does not know is refused by name before any stack is selected or made.
def test_unknown_action_is_refused(project: Path) -> None:
    env = tools_on_path(project, "pulumi", "docker")

    result = run(project, env, "dev", "deploy")

    assert result.returncode == 64 and "unknown action deploy" in result.stderr, result
    assert calls(project) == [], "a pulumi or docker command ran for an unknown action"


# `check` answers whether the CLI and the engine are there, and does nothing else.
def test_check_action_stops_after_finding_the_cli_and_engine(project: Path) -> None:
    env = tools_on_path(project, "pulumi", "docker")

    result = run(project, env, "dev", "check")

    assert result.returncode == 0, result.stderr
    assert [line for line in calls(project) if line.startswith("pulumi")] == [], calls(project)
    assert not (project / ".pulumi-state").exists(), "check made the state directory"


# `make up` says the CLI is missing before it spends minutes building the virtualenvs.
def test_make_up_names_the_missing_cli_before_building_anything(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    result = subprocess.run(
        ["make", "-C", str(REPO), "up", "STACK=dev", f"VENV={venv}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0, result.stdout
    assert "pulumi CLI is not installed" in result.stderr, result.stderr
    assert not venv.exists() and "-m venv" not in result.stdout, "a virtualenv was built first"

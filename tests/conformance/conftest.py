"""Fixtures of the conformance suite: a running Docker engine with the stand-in images built,
stacks replayed from the program's recordings, a small way to write recordings by hand for the
replay's own tests, and the run's summary (build/conformance/summary.json).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import pytest

from conformance import build
from conformance.replay import RUN_LABEL, Replay, plan_replay, remove_run
from conformance.report import STARTED_VARIABLE, RunReport, outcome_counts, render, save
from tools.recording import RecordedResource, Recording

REPOSITORY = Path(__file__).resolve().parents[2]


REPORT = RunReport(float(os.environ.get(STARTED_VARIABLE) or time.time()))


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    """A Docker engine with every stand-in image built (installs and starts what is missing)."""
    started = time.monotonic()
    subprocess.run([str(REPOSITORY / "conformance" / "engine.sh")], check=True)
    REPORT.engine_seconds = time.monotonic() - started
    started = time.monotonic()
    REPORT.add_images(build.build_all(), time.monotonic() - started)
    client = docker.from_env(timeout=300)
    yield client
    remove_run(client)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Writes build/conformance/summary.json and shows it on one screen (conformance runs)."""
    if REPORT.engine_seconds == 0.0 and not REPORT.stacks:
        return  # the engine was never needed: not a conformance run
    document = save(REPORT.as_json(outcome_counts(terminalreporter.stats), time.time()))
    terminalreporter.section("conformance summary")
    for line in render(document):
        terminalreporter.write_line(line)


@pytest.fixture
def run_labels(engine: docker.DockerClient) -> Iterator[None]:
    """Fails the test when a replay left anything behind on the engine."""
    yield
    leftovers = engine.containers.list(all=True, filters={"label": RUN_LABEL})
    assert not leftovers, f"replay left containers behind: {[c.name for c in leftovers]}"


class HandWritten:
    """Builds a Recording resource by resource, the way the offline preview records them."""

    def __init__(self, stack: str = "conformance") -> None:
        self.recording = Recording(project="hospital", stack=stack)

    def add(
        self,
        type_token: str,
        name: str,
        inputs: Mapping[str, Any],
        *,
        parent: RecordedResource | None = None,
        depends_on: tuple[RecordedResource, ...] = (),
        outputs: Mapping[str, Any] | None = None,
    ) -> RecordedResource:
        resource = RecordedResource(
            type=type_token,
            name=name,
            urn=f"urn:pulumi:{self.recording.stack}::hospital::{type_token}::{name}",
            parent=parent.urn if parent else None,
            custom=not type_token.startswith("hospital:"),
            dependencies=tuple(d.urn for d in depends_on),
            property_dependencies={},
            inputs=dict(inputs),
            outputs=dict(outputs or inputs),
            secret_inputs=frozenset(),
            secret_outputs=frozenset(),
        )
        self.recording.resources.append(resource)
        return resource

    def image(self, reference: str) -> str:
        """Record a RemoteImage and return the imageId a container refers to it by."""
        image_id = "sha256:" + hashlib.sha256(reference.encode()).hexdigest()
        name = reference.replace("/", "-").replace(":", "-")
        self.add(
            "docker:index/remoteImage:RemoteImage",
            name,
            {"name": reference, "keepLocally": True},
            outputs={"name": reference, "imageId": image_id},
        )
        return image_id

    def network(self, name: str, subnet: str, internal: bool = False) -> RecordedResource:
        return self.add(
            "docker:index/network:Network",
            name,
            {
                "name": name,
                "internal": internal,
                "ipamConfigs": [{"subnet": subnet}],
                "labels": [{"label": "hospital.zone", "value": name}],
            },
        )

    def volume(self, name: str) -> RecordedResource:
        return self.add(
            "docker:index/volume:Volume",
            name,
            {"name": name, "labels": [{"label": "hospital.data-class", "value": "phi"}]},
        )

    def container(self, name: str, depends_on=(), **inputs: Any) -> RecordedResource:
        return self.add(
            "docker:index/container:Container",
            name,
            {"name": name, **inputs},
            depends_on=tuple(depends_on),
        )


@pytest.fixture
def hand_written() -> HandWritten:
    return HandWritten()


class ReplayedStack:
    """A stack's recording replayed on the engine, with what the checks need from it.

    Secrets (passwords, keys) are read from the recording only to act as a client would.
    """

    def __init__(self, recording: Recording, replay: Replay) -> None:
        self.recording = recording
        self.replay = replay
        self.ca_file = ""  # the generated CA's PEM on disk, set by replay_recording

    @classmethod
    def start(cls, recording: Recording, engine: docker.DockerClient, label: str) -> ReplayedStack:
        """Replay `recording` and wait for it; `label` names it in the run's summary."""
        replay = Replay(plan_replay(recording), engine)
        started = time.monotonic()
        replay.__enter__()
        REPORT.add_stack(label, replay.summary(), time.monotonic() - started)
        return cls(recording, replay)

    def container_inputs(self, service: str) -> Mapping[str, Any]:
        recorded_name = self.replay.by_service(service)
        for resource in self.recording.of_type("docker:index/container:Container"):
            if resource.inputs.get("name") == recorded_name:
                return resource.inputs
        raise KeyError(service)

    def uploaded(self, service: str, path: str) -> str:
        """The content the program uploads to `path` for the service's container: into the
        container itself, or into the file carrier it takes its volumes from."""
        inputs = self.container_inputs(service)
        sources = [inputs]
        for volume in inputs.get("volumes", []):
            if "fromContainer" in volume:
                carrier = volume["fromContainer"].rpartition(":")[0]
                sources += [
                    r.inputs
                    for r in self.recording.of_type("docker:index/container:Container")
                    if r.inputs.get("name") == carrier
                ]
        for source in sources:
            for upload in source.get("uploads", []):
                if upload["file"] == path:
                    return upload["content"]
        raise KeyError(f"{service} gets no upload at {path}")

    def environment(self, service: str) -> dict[str, str]:
        """The service container's recorded environment."""
        return dict(line.split("=", 1) for line in self.container_inputs(service)["envs"])

    def ca_pem(self) -> str:
        authorities = self.recording.of_type("tls:index/selfSignedCert:SelfSignedCert")
        assert len(authorities) == 1, "expected exactly one generated CA"
        return authorities[0].outputs["certPem"]

    def host_name(self, service: str) -> str:
        """`pacs.<domain>` from the stack's endpoints export."""
        url = self.recording.export("endpoints")[service]
        return url.split("//", 1)[1].split("/", 1)[0].split(":", 1)[0]

    def published(self, service: str, internal: int) -> tuple[str, int]:
        return self.replay.host_port(self.replay.by_service(service), internal)

    def address(self, service: str) -> str:
        return self.replay.address(self.replay.by_service(service))


@pytest.fixture(scope="session")
def replay_recording(engine: docker.DockerClient, tmp_path_factory):
    """Replays any recording: replay_recording(recording, label) -> ReplayedStack with the
    generated CA written to `ca_file`, running until the caller calls `.replay.down()` (the
    session's end removes it otherwise). A module replays its own stack and removes it, so
    that no test sees another module's containers."""

    def start(recording: Recording, label: str) -> ReplayedStack:
        stack = ReplayedStack.start(recording, engine, label)
        ca_file = tmp_path_factory.mktemp("replayed-ca") / "ca.pem"
        ca_file.write_text(stack.ca_pem())
        stack.ca_file = str(ca_file)
        return stack

    return start


@pytest.fixture
def host_address():
    """Gives this host an extra address (e.g. a modality's) for the test, removed after."""
    added: list[str] = []

    def add(address: str) -> str:
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=False)
        added.append(address)
        return address

    yield add
    for address in added:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)

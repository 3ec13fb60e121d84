"""The replay's translation of a recording into engine arguments (no engine needed)."""

from __future__ import annotations

import pytest

from conformance.replay import ReplayError, plan_replay, stand_in_for

MARIADB = "mariadb:10.11.9"


# Every image reference is swapped through the one map, or skipped, or refused.
@pytest.mark.parametrize(
    ("reference", "local"),
    [
        ("mariadb:10.11.9", "local/mariadb"),
        ("docker.io/library/mariadb:10.11", "local/mariadb"),
        ("orthancteam/orthanc:24.10.3", "local/orthanc"),
        ("nginx:1.27.2-alpine", "local/nginx"),
        ("openemr/openemr:7.0.4", None),
        ("ghcr.io/velocidex/velociraptor-server:0.77.3", None),
    ],
)
def test_image_references_map_to_their_stand_in(reference, local):
    assert stand_in_for(reference) == local, f"{reference} should map to {local}"


# An image nobody mapped must stop the replay instead of running something else.
def test_unmapped_image_is_refused():
    with pytest.raises(ReplayError, match="redis:7"):
        stand_in_for("redis:7")


# A recorded field the replay does not know is an error, never silently dropped.
def test_unknown_container_field_is_an_error(hand_written):
    image = hand_written.image(MARIADB)
    hand_written.container("db", image=image, gpus="all")

    with pytest.raises(ReplayError, match="gpus"):
        plan_replay(hand_written.recording)


# The same holds inside nested fields such as a port.
def test_unknown_nested_field_is_an_error(hand_written):
    image = hand_written.image(MARIADB)
    hand_written.container("db", image=image, ports=[{"internal": 3306, "hostIp": "0.0.0.0"}])

    with pytest.raises(ReplayError, match="hostIp"):
        plan_replay(hand_written.recording)


# Containers of images that cannot be had here are listed as skipped, with the reason.
def test_unavailable_images_are_skipped_by_name(hand_written):
    hand_written.container("emr", image=hand_written.image("openemr/openemr:7.0.4"))

    plan = plan_replay(hand_written.recording)

    assert [s.name for s in plan.skipped] == ["emr"], "openemr container should be skipped"
    assert "OpenEMR" in plan.skipped[0].reason
    assert plan.containers[0].placeholder, "a skipped container keeps a network placeholder"


# Dependencies decide the start order, also through a component's children.
def test_start_order_follows_recorded_dependencies(hand_written):
    image = hand_written.image(MARIADB)
    component = hand_written.add("hospital:components:Database", "database", {})
    database = hand_written.add(
        "docker:index/container:Container",
        "db",
        {"name": "db", "image": image},
        parent=component,
    )
    hand_written.container("app", image=image, depends_on=[component])
    hand_written.recording.resources.remove(database)
    hand_written.recording.resources.append(database)

    order = [c.recorded_name for c in plan_replay(hand_written.recording).containers]

    assert order == ["db", "app"], f"db must start before its dependant, got {order}"


# Health check durations reach the engine in nanoseconds, as the API wants them.
def test_healthcheck_durations_are_converted(hand_written):
    image = hand_written.image(MARIADB)
    hand_written.container(
        "db",
        image=image,
        healthcheck={
            "tests": ["CMD", "true"],
            "interval": "1m30s",
            "timeout": "500ms",
            "retries": 3,
            "startPeriod": "2s",
        },
    )

    check = plan_replay(hand_written.recording).containers[0].arguments["healthcheck"]

    assert check["interval"] == 90_000_000_000, f"interval wrong: {check}"
    assert check["timeout"] == 500_000_000, f"timeout wrong: {check}"
    assert check["start_period"] == 2_000_000_000, f"start period wrong: {check}"


# Uploads keep pulumi-docker's modes: 0644, 0744 when executable, `permissions` wins.
def test_upload_modes_follow_the_provider(hand_written):
    image = hand_written.image(MARIADB)
    hand_written.container(
        "db",
        image=image,
        uploads=[
            {"file": "/a", "content": "x"},
            {"file": "/b", "content": "x", "executable": True},
            {"file": "/c", "contentBase64": "eA==", "permissions": "0600"},
        ],
    )

    uploads = plan_replay(hand_written.recording).containers[0].uploads

    assert [oct(u.mode) for u in uploads] == ["0o644", "0o744", "0o600"]
    assert uploads[2].content == b"x", "base64 content should be decoded"


# A file carrier replays as the provider creates it: no network, anonymous volumes at the
# recorded paths, never started; its service takes those volumes with the recorded mode and
# starts after it.
def test_file_carrier_and_volumes_from_replay_as_recorded(hand_written):
    image = hand_written.image(MARIADB)
    carrier = hand_written.container(
        "db-files",
        image=image,
        start=False,
        mustRun=False,
        networkMode="none",
        volumes=[{"containerPath": "/etc/mysql/conf.d"}],
        uploads=[{"file": "/etc/mysql/conf.d/a.cnf", "content": "[mariadb]"}],
    )
    hand_written.container(
        "db",
        depends_on=[carrier],
        image=image,
        readOnly=True,
        volumes=[{"fromContainer": "db-files:ro"}],
    )

    files, service = plan_replay(hand_written.recording).containers

    assert (files.recorded_name, files.start) == ("db-files", False)
    assert files.arguments["network_mode"] == "none"
    assert files.arguments["anonymous_volumes"] == ["/etc/mysql/conf.d"]
    assert [u.path for u in files.uploads] == ["/etc/mysql/conf.d/a.cnf"]
    assert service.arguments["volumes_from"] == [("db-files", "ro")]
    assert service.depends_on == {carrier.urn}

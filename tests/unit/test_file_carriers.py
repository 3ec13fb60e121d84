"""Read-only roots: a service whose root file system is read-only gets its uploaded files from a
file carrier, a container of its image that is created, filled and never started.

The provider copies uploads through the container's root ("/"), which Docker refuses on a
read-only root; the carrier's anonymous volumes, mounted read-only with `volumes_from`, bring
the same files to the same paths.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from components.platform import ROLE_LABEL, carrier_directories
from tools.plan import describe
from tools.recording import RecordedResource, Recording

CONTAINER = "docker:index/container:Container"
STACKS = ["dev", "prod"]
# The services whose images run on a read-only root, and those whose images write to theirs.
READ_ONLY = {"gateway", "database", "backup"}
WRITABLE = {"emr", "pacs", "edr"}


def labels(container: RecordedResource) -> dict[str, str]:
    return {entry["label"]: entry["value"] for entry in container.input("labels") or []}


def carrier_of(recording: Recording, service: RecordedResource) -> RecordedResource:
    (entry,) = [v["fromContainer"] for v in service.input("volumes") if "fromContainer" in v]
    assert entry.endswith(":ro"), f"{service.name} takes its files writable: {entry}"
    name = entry.removesuffix(":ro")
    (carrier,) = [c for c in recording.of_type(CONTAINER) if c.input("name") == name]
    return carrier


def carried_services(recording: Recording) -> list[tuple[RecordedResource, RecordedResource]]:
    """(service, its carrier) for each read-only service of the stack."""
    services = [s for s in recording.started_containers() if s.name in READ_ONLY]
    assert services, "no read-only service in the stack"
    return [(service, carrier_of(recording, service)) for service in services]


@pytest.mark.parametrize("stack", STACKS)
def test_read_only_services_take_their_files_from_a_carrier(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    for service, carrier in carried_services(recording):
        assert service.input("readOnly") is True, service.name
        assert not service.input("uploads"), f"{service.name} still gets uploads of its own"
        assert carrier.input("start") is False and carrier.input("mustRun") is False
        assert carrier.input("image") == service.input("image"), "the carrier runs another image"
        assert labels(carrier)["hospital.service"] == service.name
        assert labels(carrier)[ROLE_LABEL] == "files"
        # A new carrier (new files, new image) replaces the service: its label holds the id.
        assert labels(service)["hospital.files"] == carrier.id
        assert recording.uploaded_files(service), f"{service.name} gets no files"
        assert carrier.urn in service.property_dependencies["labels"], "no replacement link"


@pytest.mark.parametrize("stack", STACKS)
def test_carriers_run_nothing_and_reach_nothing(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    carriers = [c for c in recording.of_type(CONTAINER) if c.input("start") is False]

    assert {labels(c)["hospital.service"] for c in carriers} == READ_ONLY & {
        c.name for c in recording.started_containers()
    }
    for carrier in carriers:
        assert carrier.input("networkMode") == "none", carrier.name
        assert not carrier.input("networksAdvanced") and not carrier.input("ports")
        assert not carrier.input("envs"), f"{carrier.name} carries environment variables"
        assert carrier.input("capabilities") == {"drops": ["ALL"]}, carrier.name
        volumes = carrier.input("volumes")
        assert all(set(v) == {"containerPath"} for v in volumes), f"{carrier.name}: {volumes}"


# Every uploaded file lands in one of the carrier's volumes (else the service never sees it),
# and keys and passwords stay secret inputs there.
@pytest.mark.parametrize("stack", STACKS)
def test_every_file_lies_in_a_carrier_volume_and_secrets_stay_secret(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    for service, carrier in carried_services(recording):
        directories = [PurePosixPath(v["containerPath"]) for v in carrier.input("volumes")]
        for file in recording.uploaded_files(service):
            path = PurePosixPath(file.file)
            assert any(path.is_relative_to(d) for d in directories), (service.name, file.file)
            looks_secret = path.name.endswith(("-password", ".key", "-key.pem"))
            assert file.secret == looks_secret, (service.name, file.file, file.secret)


@pytest.mark.parametrize("stack", STACKS)
def test_images_that_write_their_root_keep_it_writable_with_their_own_uploads(
    stack: str, request
) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    for service in recording.started_containers():
        if service.name not in WRITABLE:
            continue
        assert service.input("readOnly") is False, service.name
        assert not any("fromContainer" in v for v in service.input("volumes") or [])
        assert "hospital.files" not in labels(service)


def test_carrier_directories_are_the_fewest_that_hold_every_file() -> None:
    paths = [
        "/etc/mysql/conf.d/50-hospital.cnf",
        "/etc/mysql/hospital/accounts.sql",
        "/etc/mysql/hospital/tls/server.pem",
        "/etc/mysql/hospital/secrets/root-password",
    ]

    assert carrier_directories(paths) == ("/etc/mysql/conf.d", "/etc/mysql/hospital")


def test_nested_directories_without_a_file_of_the_outer_one_stay_apart() -> None:
    paths = ["/etc/nginx/tls/a.key", "/etc/nginx/sites/a.conf"]

    assert carrier_directories(paths) == ("/etc/nginx/sites", "/etc/nginx/tls")


@pytest.mark.parametrize("path", ["/hosts", "/etc/hosts", "/usr/motd", "/tmp/x", "/run/x"])
def test_a_system_directory_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="system directory"):
        carrier_directories([path])


@pytest.mark.parametrize("mounted", ["/etc/backup-job", "/etc", "/etc/backup-job/inner"])
def test_a_directory_overlapping_a_mount_is_refused(mounted: str) -> None:
    with pytest.raises(ValueError, match=f"overlaps {mounted}"):
        carrier_directories(["/etc/backup-job/db-password"], occupied=[mounted])


# The plan shows which container never starts, what it holds and who reads it.
def test_plan_names_the_carriers_and_their_readers(prod_recording: Recording) -> None:
    lines = {
        resource.name: describe(resource, prod_recording)
        for resource in prod_recording.of_type(CONTAINER)
    }

    assert "never started, holds files at /etc/nginx" in lines["gateway-files"]
    assert "files from hospital-prod-gateway-files:ro" in lines["gateway"]
    assert "never started" not in lines["pacs"] and "files from" not in lines["pacs"]


# The VOLUMEs each image declares (mariadb 11.4's Dockerfile: /var/lib/mysql; nginx and the
# backup image declare none). The carrier gets them too and passes them on read-only, so the
# service must mount a volume of its own over each.
IMAGE_VOLUMES = {"gateway": [], "database": ["/var/lib/mysql"], "backup": []}


@pytest.mark.parametrize("stack", STACKS)
def test_read_only_services_mount_their_own_volume_at_each_image_volume(stack, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    for service in recording.started_containers():
        if service.name not in READ_ONLY:
            continue
        own = {v["containerPath"]: v for v in service.input("volumes") if "volumeName" in v}
        for path in IMAGE_VOLUMES[service.name]:
            assert path in own and not own[path].get("readOnly"), (service.name, path)

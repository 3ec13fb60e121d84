"""The replayed dev stack checked with real clients, with the checks that apply to dev.

Dev differs from prod on purpose: everything is published on loopback, the database lets a
client connect without TLS, policies are advisory, there is no backup job, and its one modality
(WORKSTATION, AET DEVSCU) is a program on the same laptop, so Orthanc checks its AE title but
not its address.
"""

from __future__ import annotations

import ssl

import httpx
import pytest

from conformance.clients import (
    HTTP_PORT,
    HTTPS_PORT,
    database_connection,
    handshake,
    https_get,
    orthanc_dicom,
    orthanc_user,
    storing_modality,
)
from conformance.dicom import echo, sample_ct, store
from tools.preview import run_program

pytestmark = pytest.mark.conformance

DICOM_PORT = 4242


@pytest.fixture(scope="module")
def dev(replay_recording):
    """The dev stack, replayed for this module only and removed after it."""
    stack = replay_recording(run_program("dev", preview=False), "dev")
    yield stack
    stack.replay.down()


def _dicom_on_loopback(dev) -> tuple[str, int]:
    """Orthanc's DICOM port as the dev laptop reaches it: published on 127.0.0.1."""
    return dev.published("pacs", DICOM_PORT)


# Dev runs no backup job: nothing to replay for it and the export says so.
def test_dev_runs_no_backup_job(dev):
    names = [spec.recorded_name for spec in dev.replay.plan.containers]

    assert not [name for name in names if "backup" in name], f"dev replays {names}"
    assert dev.recording.export("backup") == {"enabled": False}


# The gateway's certificate verifies against the dev CA for the PACS host name; Orthanc
# answers 401 without credentials and 200 with the generated ones. Dev sends no HSTS, so a
# lab browser is not pinned to HTTPS for the lab's names for a year (prod sends it).
def test_orthanc_through_gateway_requires_the_generated_credentials(dev):
    anonymous = https_get(dev, "pacs", "/system")
    admin = https_get(dev, "pacs", "/system", auth=orthanc_user(dev))

    assert anonymous.status_code == 401, f"anonymous got {anonymous.status_code}"
    assert admin.status_code == 200, f"generated admin credentials got {admin.status_code}"
    assert "strict-transport-security" not in admin.headers, admin.headers


# Dev's gateway keeps prod's protocol floor: TLS 1.0/1.1 refused, 1.2 and 1.3 accepted.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize(
    ("version", "accepted"),
    [
        (ssl.TLSVersion.TLSv1, False),
        (ssl.TLSVersion.TLSv1_1, False),
        (ssl.TLSVersion.TLSv1_2, True),
        (ssl.TLSVersion.TLSv1_3, True),
    ],
)
def test_gateway_protocol_floor(dev, version, accepted):
    outcome = handshake(dev, version)

    expected = version.name.replace("_", ".") if accepted else "refused"
    assert outcome.startswith(expected), f"{version.name}: {outcome}"


# Plain HTTP on loopback is redirected to the HTTPS port dev publishes.
def test_gateway_redirects_http_to_the_dev_https_port(dev):
    address, port = dev.published("gateway", HTTP_PORT)
    host_name = dev.host_name("pacs")
    recorded_https = next(
        p["external"]
        for p in dev.container_inputs("gateway")["ports"]
        if p["internal"] == HTTPS_PORT
    )

    response = httpx.get(f"http://{address}:{port}/app/explorer.html", headers={"Host": host_name})

    assert response.status_code in (301, 308), f"HTTP answered {response.status_code}"
    location = response.headers["location"]
    assert location.startswith(f"https://{host_name}:{int(recorded_https)}/"), location


# The workstation on the laptop echoes and stores through the port published on loopback; an
# AE title nobody configured cannot store.
def test_workstation_stores_over_loopback_and_strangers_cannot(dev):
    address, port = _dicom_on_loopback(dev)
    called = orthanc_dicom(dev)["DicomAet"]
    workstation = storing_modality(dev)["AET"]

    status = echo(address, port, called, workstation)
    stored = store(address, port, called, workstation, [sample_ct()])
    stranger = store(address, port, called, "STRANGER", [sample_ct()])

    assert address == "127.0.0.1", f"DICOM published on {address}"
    assert status == 0, f"C-ECHO from {workstation} failed: {status}"
    assert stored.all_stored, f"C-STORE from {workstation} failed: {stored}"
    assert not stranger.all_stored, "an unknown AE title stored an instance"


# Dev's database keeps TLS for the application account but, being a lab, lets a plain
# connection in too (prod refuses it).
def test_database_offers_tls_and_allows_plain_connections(dev):
    with database_connection(dev, tls=True) as secure, secure.cursor() as cursor:
        cursor.execute("SHOW STATUS LIKE 'Ssl_version'")
        tls_version = cursor.fetchone()[1]
    with database_connection(dev, tls=False) as plain, plain.cursor() as cursor:
        cursor.execute("SHOW STATUS LIKE 'Ssl_version'")
        plain_version = cursor.fetchone()[1]

    assert tls_version in ("TLSv1.2", "TLSv1.3"), f"TLS session on {tls_version!r}"
    assert plain_version == "", f"the plain session negotiated {plain_version!r}"


# Orthanc restarted keeps what the workstation stored.
def test_orthanc_restart_keeps_instances(dev):
    address, port = _dicom_on_loopback(dev)
    dicom = orthanc_dicom(dev)
    store(address, port, dicom["DicomAet"], storing_modality(dev)["AET"], [sample_ct()])
    statistics = https_get(dev, "pacs", "/statistics", auth=orthanc_user(dev)).json()
    pacs = dev.replay.by_service("pacs")

    dev.replay.container(pacs).restart(timeout=30)
    dev.replay.wait_healthy(pacs, 120)
    after = https_get(dev, "pacs", "/statistics", auth=orthanc_user(dev)).json()

    assert statistics["CountInstances"] >= 1, "nothing stored before the restart"
    assert after["CountInstances"] == statistics["CountInstances"], "instances lost on restart"

"""The replayed prod stack checked with real clients: TLS, HTTP, DICOM and SQL."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import time

import httpx
import pymysql
import pytest

from conformance.clients import database_connection as _database_connection
from conformance.clients import handshake as _handshake
from conformance.clients import https_get as _https
from conformance.clients import orthanc_dicom as _modalities
from conformance.clients import orthanc_user as _orthanc_user
from conformance.dicom import echo, sample_ct, store
from tools.preview import run_program

pytestmark = pytest.mark.conformance

DICOM_PORT = 4242
HTTPS_PORT = 8443
HTTP_PORT = 8080


@pytest.fixture(scope="module")
def prod(replay_recording):
    """The prod stack, replayed for this module only and removed after it."""
    stack = replay_recording(run_program("prod", preview=False), "prod")
    yield stack
    stack.replay.down()


# The gateway's certificate verifies against the generated CA for the PACS host name.
def test_gateway_certificate_verifies_for_the_service_host_name(prod):
    response = _https(prod, "pacs", "/system", auth=_orthanc_user(prod))

    assert response.status_code == 200, f"verified HTTPS to PACS failed: {response.status_code}"


# A certificate check against another host name must fail: hostnames are really checked.
def test_gateway_certificate_does_not_verify_for_another_name(prod):
    address, port = prod.published("gateway", HTTPS_PORT)
    context = ssl.create_default_context(cafile=prod.ca_file)

    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection((address, port), timeout=10) as raw,
    ):
        context.wrap_socket(raw, server_hostname="unknown.invalid").close()


# Old protocols are refused by the gateway.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_gateway_refuses_tls_before_1_2(prod, version):
    outcome = _handshake(prod, version)

    assert outcome.startswith("refused"), f"gateway accepted {version.name}: {outcome}"


# TLS 1.2 and 1.3 are both accepted.
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_gateway_accepts_tls_1_2_and_1_3(prod, version):
    outcome = _handshake(prod, version)

    assert outcome == version.name.replace("_", "."), f"{version.name} failed: {outcome}"


# Browsers are told to stay on HTTPS.
def test_gateway_sends_hsts(prod):
    response = _https(prod, "pacs", "/system", auth=_orthanc_user(prod))

    hsts = response.headers.get("strict-transport-security", "")
    assert "max-age=" in hsts, f"no HSTS header, headers: {dict(response.headers)}"


# Plain HTTP is redirected to HTTPS for the same host.
def test_gateway_redirects_http_to_https(prod):
    address, port = prod.published("gateway", HTTP_PORT)
    host_name = prod.host_name("pacs")

    response = httpx.get(f"http://{address}:{port}/app/explorer.html", headers={"Host": host_name})

    assert response.status_code in (301, 308), f"HTTP answered {response.status_code}"
    assert response.headers["location"].startswith(f"https://{host_name}"), response.headers


# A TLS request from inside a container, as a compromised service would send it over its bridge.
STATUS_FROM_INSIDE = """
import socket, ssl, sys
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
with socket.create_connection((host, port), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname=name) as tls:
        tls.sendall(f"GET / HTTP/1.1\\r\\nHost: {name}\\r\\nConnection: close\\r\\n\\r\\n".encode())
        print(tls.recv(64).split()[1].decode())
"""


def _status_from_pacs(prod, service: str) -> str:
    """The HTTP status the gateway gives the PACS container (clinical zone) for a site."""
    conf = prod.uploaded("gateway", "/etc/nginx/nginx.conf")
    host_name = prod.host_name(service)
    block = conf.split(f"server_name {host_name};")[0].rsplit("server {", 1)[1]
    port = re.search(r"listen (\d+) ssl", block).group(1)
    pacs = prod.replay.container(prod.replay.by_service("pacs"))
    result = pacs.exec_run(["python3", "-c", STATUS_FROM_INSIDE, "gateway", port, host_name])
    assert result.exit_code == 0, result.output.decode(errors="replace")
    return result.output.decode().strip()


# The EDR GUI is for the management audience: a clinical container reaching the gateway over
# its bridge is refused, while the staff sites answer it as usual.
def test_edr_gui_refuses_a_clinical_container(prod):
    assert _status_from_pacs(prod, "edr") == "403", "the clinical zone reached the EDR GUI"
    assert _status_from_pacs(prod, "pacs") == "401", "the PACS site must answer the zone"


# Orthanc behind the gateway: 401 without credentials, 200 with the generated ones.
def test_orthanc_through_gateway_requires_the_generated_credentials(prod):
    anonymous = _https(prod, "pacs", "/system")
    wrong = _https(prod, "pacs", "/system", auth=("admin", "not-the-password"))
    admin = _https(prod, "pacs", "/system", auth=_orthanc_user(prod))

    assert anonymous.status_code == 401, f"anonymous got {anonymous.status_code}"
    assert wrong.status_code == 401, f"wrong password got {wrong.status_code}"
    assert admin.status_code == 200, f"generated admin credentials got {admin.status_code}"


def _storing_modality(prod) -> tuple[str, dict]:
    modalities = _modalities(prod)["DicomModalities"]
    name, modality = next((n, m) for n, m in modalities.items() if m.get("AllowStore"))
    return name, modality


# A configured modality, from its own address, can echo and store a real CT instance.
def test_configured_modality_echoes_and_stores(prod, host_address):
    _, modality = _storing_modality(prod)
    source = host_address(modality["Host"])
    called = _modalities(prod)["DicomAet"]

    status = echo(prod.address("pacs"), DICOM_PORT, called, modality["AET"], source=source)
    outcome = store(
        prod.address("pacs"), DICOM_PORT, called, modality["AET"], [sample_ct()], source=source
    )

    assert status == 0, f"C-ECHO from {modality['AET']} failed: {status}"
    assert outcome.all_stored, f"C-STORE from {modality['AET']} failed: {outcome}"


# An AE title nobody configured is refused, even from a modality's address.
def test_unknown_ae_title_cannot_store(prod, host_address):
    _, modality = _storing_modality(prod)
    source = host_address(modality["Host"])
    called = _modalities(prod)["DicomAet"]

    outcome = store(
        prod.address("pacs"), DICOM_PORT, called, "INTRUDER", [sample_ct()], source=source
    )

    assert not outcome.all_stored, "an unknown AE title stored an instance"


# A configured AE title from an address that is not its modality's is refused too.
def test_configured_ae_title_from_another_host_cannot_store(prod):
    _, modality = _storing_modality(prod)
    called = _modalities(prod)["DicomAet"]

    outcome = store(prod.address("pacs"), DICOM_PORT, called, modality["AET"], [sample_ct()])

    assert not outcome.all_stored, "the modality host check let another address store"


# What Hospital.Server.DicomTraffic reads, asked of the real Orthanc through the gateway as its
# own user: the change log's cursor, the NewInstance change of a C-STORE, and that instance's
# metadata naming the modality that sent it.
def test_edr_monitor_reads_who_stored_an_instance(prod, host_address):
    _, modality = _storing_modality(prod)
    source = host_address(modality["Host"])
    called = _modalities(prod)["DicomAet"]
    monitor = _orthanc_user(prod, "edr-monitor")
    newest = _https(prod, "pacs", "/changes?last", auth=monitor)
    assert newest.status_code == 200, f"/changes?last answered {newest.status_code}"
    since = newest.json()["Last"]
    instance = sample_ct()
    stored = store(
        prod.address("pacs"), DICOM_PORT, called, modality["AET"], [instance], source=source
    )
    assert stored.all_stored, f"could not store the instance to follow: {stored}"

    changes = _https(prod, "pacs", f"/changes?since={since}&limit=500", auth=monitor).json()
    [instance_id] = [c["ID"] for c in changes["Changes"] if c["ChangeType"] == "NewInstance"]
    metadata = _https(
        prod, "pacs", f"/instances/{instance_id}/metadata?expand", auth=monitor
    ).json()

    assert changes["Last"] > since and changes["Done"] is True, changes
    assert metadata["RemoteAET"] == modality["AET"], metadata
    assert (metadata["CalledAET"], metadata["Origin"]) == (called, "DicomProtocol"), metadata
    assert metadata["RemoteIP"] == source and metadata["ReceptionDate"], metadata


# DICOMweb QIDO-RS through the gateway finds a study stored over DICOM.
def test_qido_through_gateway_finds_the_stored_study(prod, host_address):
    _, modality = _storing_modality(prod)
    source = host_address(modality["Host"])
    called = _modalities(prod)["DicomAet"]
    instance = sample_ct()
    stored = store(
        prod.address("pacs"), DICOM_PORT, called, modality["AET"], [instance], source=source
    )
    assert stored.all_stored, f"could not store the instance to search for: {stored}"

    response = _https(
        prod,
        "pacs",
        f"/dicom-web/studies?StudyInstanceUID={instance.StudyInstanceUID}",
        auth=_orthanc_user(prod),
    )

    assert response.status_code == 200, f"QIDO-RS answered {response.status_code}"
    found = [s["0020000D"]["Value"][0] for s in response.json()]
    assert found == [instance.StudyInstanceUID], f"QIDO-RS found {found}"


# MariaDB refuses the application account over plain TCP, with the password that works on TLS.
def test_database_refuses_connections_without_tls(prod):
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _database_connection(prod, tls=False).close()
    _database_connection(prod, tls=True).close()

    # MariaDB answers a plain connection under require_secure_transport with access denied.
    assert refused.value.args[0] in (1045, 3159, 4151), f"unexpected refusal: {refused.value}"


# The application account connects over verified TLS and can create and read a table.
def test_application_account_uses_tls_and_can_write(prod):
    connection = _database_connection(prod, tls=True)

    with connection, connection.cursor() as cursor:
        cursor.execute("SHOW STATUS LIKE 'Ssl_version'")
        tls_version = cursor.fetchone()[1]
        cursor.execute("CREATE TABLE IF NOT EXISTS conformance_probe (id INT PRIMARY KEY)")
        cursor.execute("REPLACE INTO conformance_probe VALUES (7)")
        cursor.execute("SELECT id FROM conformance_probe")
        rows = cursor.fetchall()

    assert tls_version in ("TLSv1.2", "TLSv1.3"), f"session not on TLS 1.2+: {tls_version!r}"
    assert rows == ((7,),), f"table round trip failed: {rows}"


def _instance_count(prod) -> int:
    response = _https(prod, "pacs", "/statistics", auth=_orthanc_user(prod))
    assert response.status_code == 200, f"statistics answered {response.status_code}"
    return int(response.json()["CountInstances"])


# Orthanc restarted keeps its instances (storage and index live on the volume).
def test_orthanc_restart_keeps_instances(prod, host_address):
    _, modality = _storing_modality(prod)
    source = host_address(modality["Host"])
    called = _modalities(prod)["DicomAet"]
    store(prod.address("pacs"), DICOM_PORT, called, modality["AET"], [sample_ct()], source=source)
    before = _instance_count(prod)
    pacs = prod.replay.by_service("pacs")

    prod.replay.container(pacs).restart(timeout=30)
    prod.replay.wait_healthy(pacs, 120)

    assert before >= 1, "nothing stored before the restart"
    assert _instance_count(prod) == before, "instances lost across a restart"


# A container whose process dies is brought back healthy by its restart policy.
def test_killed_container_is_restarted_healthy(prod):
    pacs = prod.replay.by_service("pacs")
    container = prod.replay.container(pacs)
    restarts = container.attrs["RestartCount"]

    os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while prod.replay.container(pacs).attrs["RestartCount"] == restarts:
        assert time.monotonic() < deadline, "the engine did not restart the killed container"
        time.sleep(0.2)
    prod.replay.wait_healthy(pacs, 120)

    assert prod.replay.health(pacs) == "healthy"


# The gateway, the database and the backup job run on a read-only root, reading the files the
# program uploaded from their never-started carrier, read-only too; a restart (the database
# replays its start, the entrypoint included) comes back healthy on the same read-only root.
# A carrier also gets the VOLUMEs its image declares (MariaDB's /var/lib/mysql): the service's
# own volume at that path wins, writable.
@pytest.mark.parametrize("service", ["gateway", "database", "backup"])
def test_read_only_services_run_from_their_file_carriers(prod, service):
    name = prod.replay.by_service(service)
    carrier_name = f"{name}-files"
    carrier = prod.replay.container(carrier_name)
    (recorded,) = [
        c
        for c in prod.recording.of_type("docker:index/container:Container")
        if c.input("name") == carrier_name
    ]
    paths = {volume["containerPath"] for volume in recorded.input("volumes")}

    prod.replay.container(name).restart(timeout=30)
    prod.replay.wait_healthy(name, 180)
    container = prod.replay.container(name)
    mounted = {m["Destination"]: m for m in container.attrs["Mounts"] if m["Type"] == "volume"}
    held = {m["Destination"]: m["Name"] for m in carrier.attrs["Mounts"]}
    written = container.exec_run(["sh", "-c", "touch /probe-root; touch /etc/probe-etc"])

    assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True
    assert carrier.attrs["State"]["Status"] == "created", "the carrier was started"
    assert paths and paths <= set(held), f"carrier volumes {sorted(held)}, recorded {paths}"
    for path in paths:
        assert mounted[path]["Name"] == held[path] and not mounted[path]["RW"], (service, path)
    for path in set(held) - paths:
        assert mounted[path]["Name"] != held[path] and mounted[path]["RW"], (service, path)
    assert written.exit_code != 0 and b"Read-only file system" in written.output, written
    assert prod.replay.health(name) == "healthy"

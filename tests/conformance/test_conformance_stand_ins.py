"""The stand-in images and the replay on a real engine, driven by hand-written recordings."""

from __future__ import annotations

import pymysql
import pytest

from conformance.dicom import echo
from conformance.replay import Replay, ReplayError, plan_replay

pytestmark = pytest.mark.conformance

MARIADB = "mariadb:10.11.9"
ORTHANC = "orthancteam/orthanc:24.10.3"
NGINX = "nginx:1.27.2"
QUICK_CHECK = {"interval": "1s", "timeout": "5s", "retries": 30, "startPeriod": "1s"}


def _database(hand_written, **overrides):
    network = hand_written.network("cf-data", "10.213.1.0/24", internal=True)
    volume = hand_written.volume("cf-db")
    inputs = {
        "image": hand_written.image(MARIADB),
        "envs": [
            "MARIADB_ROOT_PASSWORD_FILE=/run/secrets/root",
            "MARIADB_DATABASE=clinic",
            "MARIADB_USER=clinic",
            "MARIADB_PASSWORD_FILE=/run/secrets/clinic",
        ],
        "uploads": [
            {"file": "/run/secrets/root", "content": "root-Secret-1"},
            {"file": "/run/secrets/clinic", "content": "clinic-Secret-1"},
        ],
        "volumes": [{"volumeName": volume.inputs["name"], "containerPath": "/var/lib/mysql"}],
        "networksAdvanced": [{"name": network.inputs["name"], "aliases": ["db"]}],
        "healthcheck": {
            "tests": ["CMD", "healthcheck.sh", "--su-mysql", "--connect", "--innodb_initialized"],
            **QUICK_CHECK,
        },
        "wait": True,
        "waitTimeout": 90,
        **overrides,
    }
    return hand_written.container("cf-db", **inputs)


# The MariaDB stand-in honours the *_FILE contract: database, account and password from files.
def test_mariadb_stand_in_creates_the_account_from_password_files(engine, hand_written, run_labels):
    _database(hand_written)

    with Replay(plan_replay(hand_written.recording), engine) as replay:
        connection = pymysql.connect(
            host=replay.address("cf-db"),
            port=3306,
            user="clinic",
            password="clinic-Secret-1",
            database="clinic",
        )
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE visit (id INT PRIMARY KEY)")
            cursor.execute("INSERT INTO visit VALUES (1), (2)")
            cursor.execute("SELECT COUNT(*) FROM visit")
            count = cursor.fetchone()[0]
        environment = replay.container("cf-db").attrs["Config"]["Env"]

    assert count == 2, "the application account should create and read a table"
    assert not [line for line in environment if "Secret" in line], "password leaked into env"


# An account an init_file from conf.d creates (it also runs on the first start's temporary
# server) survives the stand-in's first-start clean-up and can log in afterwards.
def test_mariadb_stand_in_keeps_accounts_of_an_init_file(engine, hand_written, run_labels):
    hook = (
        "CREATE USER IF NOT EXISTS 'reader'@'%';\n"
        "ALTER USER 'reader'@'%' IDENTIFIED BY 'reader-Secret-1';\n"
        "GRANT SELECT ON `clinic`.* TO 'reader'@'%';\n"
    )
    _database(
        hand_written,
        uploads=[
            {"file": "/run/secrets/root", "content": "root-Secret-1"},
            {"file": "/run/secrets/clinic", "content": "clinic-Secret-1"},
            {"file": "/etc/mysql/hook/accounts.sql", "content": hook},
            {
                "file": "/etc/mysql/conf.d/50-hook.cnf",
                "content": "[mariadbd]\ninit_file = /etc/mysql/hook/accounts.sql\n",
            },
        ],
    )

    with Replay(plan_replay(hand_written.recording), engine) as replay:
        connection = pymysql.connect(
            host=replay.address("cf-db"),
            port=3306,
            user="reader",
            password="reader-Secret-1",
            database="clinic",
        )
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            user = cursor.fetchone()[0]
        log = replay.container("cf-db").logs().decode(errors="replace")

    assert user == "reader@%", f"logged in as {user}"
    assert "ERROR" not in log, f"the init_file failed on the final server:\n{log[-1500:]}"


# A read-only root file system refuses uploads exactly as pulumi-docker would meet it.
def test_uploads_into_a_read_only_root_are_refused_like_the_engine_does(
    engine, hand_written, run_labels
):
    _database(hand_written, readOnly=True, tmpfs={"/run/mysqld": "rw", "/tmp": "rw"})

    replay = Replay(plan_replay(hand_written.recording), engine)

    with pytest.raises(ReplayError, match="read-only"), replay:
        pass


# Uploaded files keep the provider's modes inside the container.
def test_uploads_land_with_their_recorded_modes(engine, hand_written, run_labels):
    _database(
        hand_written,
        uploads=[
            {"file": "/run/secrets/root", "content": "root-Secret-1", "permissions": "0600"},
            {"file": "/run/secrets/clinic", "content": "clinic-Secret-1"},
            {"file": "/usr/local/bin/hello", "content": "#!/bin/sh\necho hi\n", "executable": True},
        ],
    )

    with Replay(plan_replay(hand_written.recording), engine) as replay:
        container = replay.container("cf-db")
        modes = container.exec_run(
            [
                "stat",
                "-c",
                "%a %n",
                "/run/secrets/root",
                "/run/secrets/clinic",
                "/usr/local/bin/hello",
            ]
        ).output.decode()

    assert modes.split() == [
        "600",
        "/run/secrets/root",
        "644",
        "/run/secrets/clinic",
        "744",
        "/usr/local/bin/hello",
    ], f"upload modes differ: {modes}"


# The Orthanc stand-in reads uploaded JSON, answers C-ECHO and passes the upstream probe.
def test_orthanc_stand_in_answers_echo_and_its_probe(engine, hand_written, run_labels):
    network = hand_written.network("cf-clinical", "10.213.2.0/24")
    hand_written.container(
        "cf-pacs",
        image=hand_written.image(ORTHANC),
        uploads=[
            {
                "file": "/etc/orthanc/site.json",
                "content": '{"DicomAet": "CFPACS", "RegisteredUsers": {"ops": "Ops-Secret-1"}}',
            }
        ],
        networksAdvanced=[{"name": network.inputs["name"], "aliases": ["pacs"]}],
        ports=[{"internal": 4242, "external": 4242, "ip": "127.0.0.1"}],
        healthcheck={"tests": ["CMD", "/probes/test-aliveness.py"], **QUICK_CHECK},
        wait=True,
        waitTimeout=60,
    )

    with Replay(plan_replay(hand_written.recording), engine) as replay:
        host, port = replay.host_port("cf-pacs", 4242)
        status = echo(host, port, called="CFPACS", calling="CFTEST")

    assert status == 0, f"C-ECHO to the Orthanc stand-in should succeed, got {status}"


# A skipped container still resolves by its recorded names for the others.
def test_skipped_container_keeps_its_network_names(engine, hand_written, run_labels):
    network = hand_written.network("cf-edge", "10.213.3.0/24")
    hand_written.container(
        "cf-emr",
        image=hand_written.image("openemr/openemr:7.0.4"),
        networksAdvanced=[{"name": network.inputs["name"], "aliases": ["emr"]}],
    )
    hand_written.container(
        "cf-gateway",
        image=hand_written.image(NGINX),
        networksAdvanced=[{"name": network.inputs["name"], "aliases": ["gateway"]}],
    )

    with Replay(plan_replay(hand_written.recording), engine) as replay:
        lookup = replay.container("cf-gateway").exec_run(["getent", "hosts", "emr", "cf-emr"])

    assert [s.name for s in replay.skipped] == ["cf-emr"]
    assert lookup.exit_code == 0, f"emr should resolve from the gateway: {lookup.output!r}"


# Networks are joined as the docker provider joins them: aliases listed for the network that
# `networkMode` names are lost (Docker keeps the endpoint made at create), those of a container
# left on the default mode are kept, and such a container is taken off the default bridge.
def test_networks_are_joined_as_the_provider_joins_them(engine, hand_written, run_labels):
    network = hand_written.network("cf-clinical", "10.213.4.0/24")
    zone = network.inputs["name"]
    hand_written.container(
        "cf-moded",
        image=hand_written.image(NGINX),
        networkMode=zone,
        networksAdvanced=[{"name": zone, "aliases": ["moded-alias"]}],
    )
    hand_written.container(
        "cf-listed",
        image=hand_written.image(NGINX),
        networksAdvanced=[{"name": zone, "aliases": ["listed-alias"]}],
    )

    with Replay(plan_replay(hand_written.recording), engine) as replay:
        listed = replay.container("cf-listed")
        lost = listed.exec_run(["getent", "hosts", "moded-alias"])
        kept = listed.exec_run(["getent", "hosts", "listed-alias"])
        joined = sorted(listed.attrs["NetworkSettings"]["Networks"])

    assert lost.exit_code != 0, "an alias on the network-mode network resolved"
    assert kept.exit_code == 0, f"a networksAdvanced alias did not resolve: {kept.output!r}"
    assert joined == [replay.engine_name(zone)], f"cf-listed is on {joined}"


# Cleanup removes every container, network and volume the run created.
def test_cleanup_removes_everything_the_run_created(engine, hand_written):
    _database(hand_written, wait=False)
    replay = Replay(plan_replay(hand_written.recording), engine)

    replay.up()
    replay.down()

    selector = {"label": f"hospital.conformance.run={replay.run_id}"}
    left = (
        engine.containers.list(all=True, filters=selector)
        + engine.networks.list(filters=selector)
        + engine.volumes.list(filters=selector)
    )
    assert not left, f"left behind: {left}"

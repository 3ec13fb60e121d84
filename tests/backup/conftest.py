"""Fixtures for the backup job's real tests, built from backup_rig."""

import random
import subprocess

import pytest
from backup_rig import (
    AgeKeys,
    BackupRig,
    ensure_binaries,
    populate_volumes,
    seed_sql,
    start_mariadb,
)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    ensure_binaries()
    server, database = start_mariadb(tmp_path_factory.mktemp("mariadb"))
    yield database
    server.terminate()
    server.wait(timeout=60)


@pytest.fixture(scope="session")
def age_keys(tmp_path_factory) -> AgeKeys:
    ensure_binaries()
    directory = tmp_path_factory.mktemp("keys")
    identities = []
    for name in ("hospital.key", "stranger.key"):
        path = directory / name
        subprocess.run(["age-keygen", "-o", str(path)], capture_output=True, check=True)
        identities.append(path)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(identities[0])], capture_output=True, text=True, check=True
    ).stdout.strip()
    return AgeKeys(identities[0], recipient, identities[1])


@pytest.fixture
def rig(tmp_path, mariadb, age_keys) -> BackupRig:
    """Freshly seeded databases and volumes, an empty destination."""
    mariadb.sql(seed_sql(random.Random(20261203)))
    volumes = tmp_path / "volumes"
    volumes.mkdir()
    populate_volumes(volumes, random.Random(42))
    dest = tmp_path / "backups"
    dest.mkdir()
    return BackupRig(tmp_path, volumes, dest, age_keys, mariadb)

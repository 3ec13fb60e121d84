"""What the backup job's real tests share: a throw-away MariaDB with TLS, age keys, volumes of
clinical-looking files and a rig that drives backup/bin/* directly on the host.

A module of its own rather than conftest.py, so `from backup_rig import` never picks up
another directory's conftest when several test directories run in one session."""

import datetime
import hashlib
import ipaddress
import os
import random
import select
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "backup" / "bin"
GRANTS = REPO / "backup" / "grants.sql"

# Binaries these tests run and the Debian package of each (scripts/host-packages.sh installs them;
# `make test` runs it first).
PACKAGES_BY_BINARY = {
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mariadb": "mariadb-client",
    "mariadb-dump": "mariadb-client",
    "zstd": "zstd",
    "age": "age",
    "age-keygen": "age",
    "flock": "util-linux",
    "shellcheck": "shellcheck",
}

# Passwords with every character an option file could trip on; never printed by the scripts.
BACKUP_PASSWORD = "bk#Pw\"q'\\;$HOME `x` ü7"
RESTORE_PASSWORD = "rs!Pw#2\\\\\"end'"

DATABASES = ("emr", "orthanc")
PATIENTS = 3000
ENCOUNTERS = 6000
STUDIES = 2500


def ensure_binaries() -> None:
    """Fails the test with the packages to install when a binary the backup tests run is missing."""
    missing = sorted(
        {pkg for binary, pkg in PACKAGES_BY_BINARY.items() if not shutil.which(binary)}
    )
    if missing:
        pytest.fail(f"missing Debian packages {missing}: run scripts/host-packages.sh (as root)")


@dataclass(frozen=True)
class Tls:
    ca_file: Path
    cert_file: Path
    key_file: Path


def write_tls(directory: Path) -> Tls:
    """A CA and a server certificate for 127.0.0.1/localhost, both ECDSA P-384."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backup test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA384())
    )
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    tls = Tls(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    tls.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    tls.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    tls.key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    tls.key_file.chmod(0o600)
    return tls


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class MariaDb:
    """A running throw-away server: root over its socket, the backup and restore accounts
    over TLS with passwords in files."""

    socket_path: Path
    port: int
    tls: Tls
    backup_password_file: Path
    restore_password_file: Path
    log: list[str] = field(default_factory=list)

    def sql(self, statements: str, database: str = "") -> str:
        """Runs SQL as root over the socket and returns the batch output as text."""
        return self.sql_bytes(statements, database).decode()

    def root_client(self) -> list[str]:
        """The mariadb client as root over the socket, in batch mode without column names."""
        command = ["mariadb", "--no-defaults", f"--socket={self.socket_path}", "--user=root"]
        return [*command, "--batch", "--skip-column-names", "--default-character-set=utf8mb4"]

    def sql_bytes(self, statements: str, database: str = "") -> bytes:
        """Runs SQL as root over the socket and returns the raw batch output."""
        command = self.root_client()
        if database:
            command.append(database)
        result = subprocess.run(
            command, input=statements.encode(), capture_output=True, check=False
        )
        assert result.returncode == 0, f"SQL failed: {result.stderr.decode()[-1500:]}"
        return result.stdout

    def backup_env(self) -> dict[str, str]:
        return {
            "BACKUP_DB_HOST": "127.0.0.1",
            "BACKUP_DB_PORT": str(self.port),
            "BACKUP_DB_USER": "backup",
            "BACKUP_DB_PASSWORD_FILE": str(self.backup_password_file),
            "BACKUP_DB_CA_FILE": str(self.tls.ca_file),
        }

    def restore_args(self) -> list[str]:
        return [
            "--db-host",
            "127.0.0.1",
            "--db-port",
            str(self.port),
            "--db-user",
            "restorer",
            "--db-password-file",
            str(self.restore_password_file),
            "--db-ca-file",
            str(self.tls.ca_file),
        ]


def start_mariadb(directory: Path) -> tuple[subprocess.Popen, MariaDb]:
    tls = write_tls(directory)
    datadir = directory / "datadir"
    install = subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=root",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, f"mariadb-install-db failed: {install.stderr[-2000:]}"

    socket_path = directory / "mariadb.sock"
    port = free_port()
    server = subprocess.Popen(
        [
            "mariadbd",
            "--no-defaults",
            "--user=root",
            f"--datadir={datadir}",
            f"--socket={socket_path}",
            f"--pid-file={directory / 'mariadb.pid'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--ssl-ca={tls.ca_file}",
            f"--ssl-cert={tls.cert_file}",
            f"--ssl-key={tls.key_file}",
            "--require-secure-transport=ON",
            "--event-scheduler=ON",
            # A binary log as the stack's server keeps, so dumps note the position they match.
            "--log-bin=mariadb-bin",
            "--server-id=1",
            "--binlog-format=ROW",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--character-set-server=utf8mb4",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = threading.Event()
    database = MariaDb(
        socket_path,
        port,
        tls,
        directory / "backup-password",
        directory / "restore-password",
    )

    def drain() -> None:
        for line in server.stderr:
            database.log.append(line)
            if "ready for connections" in line:
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(timeout=120) or server.poll() is not None:
        server.kill()
        pytest.fail("mariadbd did not start:\n" + "".join(database.log[-30:]))

    database.backup_password_file.write_text(BACKUP_PASSWORD + "\n")
    database.restore_password_file.write_text(RESTORE_PASSWORD + "\n")
    for secret in (database.backup_password_file, database.restore_password_file):
        secret.chmod(0o600)
    database.sql(
        f"CREATE USER backup@'%' IDENTIFIED BY {sql_string(BACKUP_PASSWORD)};\n"
        + GRANTS.read_text()
        + f"\nCREATE USER restorer@'%' IDENTIFIED BY {sql_string(RESTORE_PASSWORD)} REQUIRE SSL;"
        "\nGRANT ALL PRIVILEGES ON *.* TO restorer@'%' WITH GRANT OPTION;"
        "\nCREATE USER emr@'%' IDENTIFIED BY 'emr-app' REQUIRE SSL;"
    )
    return server, database


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def client_option_text(password: str) -> str:
    """A MariaDB option file with the password quoted the way backup-common.sh quotes it."""
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    return f'[client]\npassword="{escaped}"\n'


def seed_sql(rng: random.Random) -> str:
    """Two application databases: rows with unicode and binary, a view, a trigger, a procedure,
    a function and an event."""
    names = ["Zoë", "Ångström", "Nguyễn", "李", "O'Brien", 'Back\\slash "Quote"', "Müller"]
    lines = [
        "DROP DATABASE IF EXISTS emr; DROP DATABASE IF EXISTS orthanc;",
        "CREATE DATABASE emr CHARACTER SET utf8mb4; CREATE DATABASE orthanc CHARACTER SET utf8mb4;",
        "USE emr;",
        "CREATE TABLE patients (id INT PRIMARY KEY, name VARCHAR(200), born DATE,"
        " notes TEXT, photo BLOB, visits INT NOT NULL DEFAULT 0) ENGINE=InnoDB;",
        "CREATE TABLE encounters (id INT PRIMARY KEY, patient_id INT NOT NULL,"
        " at DATETIME(6), reason VARCHAR(255),"
        " FOREIGN KEY (patient_id) REFERENCES patients(id)) ENGINE=InnoDB;",
        "CREATE VIEW patient_visits AS SELECT p.id, p.name, COUNT(e.id) AS n"
        " FROM patients p LEFT JOIN encounters e ON e.patient_id = p.id GROUP BY p.id, p.name;",
        "CREATE TRIGGER count_visit AFTER INSERT ON encounters FOR EACH ROW"
        " UPDATE patients SET visits = visits + 1 WHERE id = NEW.patient_id;",
        "CREATE FUNCTION age_on(born DATE, day DATE) RETURNS INT DETERMINISTIC"
        " RETURN TIMESTAMPDIFF(YEAR, born, day);",
        "DELIMITER //",
        "CREATE PROCEDURE visits_of(IN pid INT) BEGIN"
        " SELECT COUNT(*) FROM encounters WHERE patient_id = pid; END //",
        "DELIMITER ;",
        "CREATE EVENT nightly_vacuum ON SCHEDULE EVERY 1 DAY STARTS '2037-01-01 03:00:00'"
        " DO DELETE FROM encounters WHERE at < '1900-01-01';",
    ]
    rows = []
    for pid in range(1, PATIENTS + 1):
        name = f"{rng.choice(names)} {pid}"
        born = f"19{rng.randint(20, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        photo = rng.randbytes(rng.randint(0, 300)).hex()
        rows.append(
            f"({pid},{sql_string(name)},'{born}',{sql_string('note ' * rng.randint(0, 20))},"
            f"{'UNHEX(' + repr(photo) + ')' if photo else 'NULL'})"
        )
    for start in range(0, len(rows), 500):
        lines.append(
            "INSERT INTO patients (id, name, born, notes, photo) VALUES "
            + ",".join(rows[start : start + 500])
            + ";"
        )
    rows = [
        f"({eid},{rng.randint(1, PATIENTS)},'2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        f" 0{rng.randint(0, 9)}:00:00.{rng.randint(0, 999999):06d}',"
        f"{sql_string(rng.choice(['CT', 'MR', 'follow-up', 'Überweisung', '']))})"
        for eid in range(1, ENCOUNTERS + 1)
    ]
    for start in range(0, len(rows), 1000):
        lines.append("INSERT INTO encounters VALUES " + ",".join(rows[start : start + 1000]) + ";")
    lines += [
        "USE orthanc;",
        "CREATE TABLE resources (internal_id BIGINT AUTO_INCREMENT PRIMARY KEY,"
        " public_id CHAR(44) NOT NULL UNIQUE, kind TINYINT, payload LONGBLOB) ENGINE=InnoDB;",
    ]
    rows = [
        f"('{hashlib.sha1(str(n).encode()).hexdigest()[:44]}',{n % 4},"
        f"UNHEX('{rng.randbytes(64).hex()}'))"
        for n in range(STUDIES)
    ]
    lines.append("INSERT INTO resources (public_id, kind, payload) VALUES " + ",".join(rows) + ";")
    return "\n".join(lines) + "\n"


def database_snapshot(database: MariaDb) -> dict[str, str]:
    """Everything a restore must bring back: each table's rows (hashed in key order), counts,
    and the definitions of views, triggers, routines and events."""
    snapshot: dict[str, str] = {}
    schemas = ",".join(f"'{name}'" for name in DATABASES)
    tables = database.sql(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
        f" WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN ({schemas})"
        " ORDER BY TABLE_SCHEMA, TABLE_NAME"
    ).split("\n")
    for row in filter(None, tables):
        schema, table = row.split("\t")
        content = database.sql_bytes(f"SELECT * FROM `{schema}`.`{table}` ORDER BY 1")
        snapshot[f"rows {schema}.{table}"] = hashlib.sha256(content).hexdigest()
        snapshot[f"count {schema}.{table}"] = str(content.count(b"\n"))
    for label, query in {
        "views": "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS",
        "triggers": "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, ACTION_STATEMENT"
        " FROM information_schema.TRIGGERS",
        "routines": "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION"
        " FROM information_schema.ROUTINES",
        "events": "SELECT EVENT_SCHEMA, EVENT_NAME, EVENT_DEFINITION, STATUS"
        " FROM information_schema.EVENTS",
    }.items():
        column = query.split()[1].rstrip(",")
        snapshot[label] = database.sql(f"{query} WHERE {column} IN ({schemas}) ORDER BY 1, 2")
    return snapshot


VOLUME_NAMES = ("openemr-sites", "orthanc-storage", "velociraptor-datastore")


def populate_volumes(root: Path, rng: random.Random) -> None:
    """Three volumes: binary and text files, unicode and awkward names, owners other than root,
    restrictive modes, symlinks, a hard link, empty files and directories."""
    sites = root / "openemr-sites"
    documents = sites / "default" / "documents" / "Zoë Ångström"
    documents.mkdir(parents=True)
    (documents / "ultraschall \u2013 befund.pdf").write_bytes(b"%PDF-1.4\n" + rng.randbytes(40_000))
    (documents / "患者記録.txt").write_text("血圧 120/80\n" * 200, encoding="utf-8")
    (documents / "name with spaces & 'quotes'.txt").write_text("spaces\n")
    (documents / "empty.txt").write_bytes(b"")
    (sites / "default" / "sqlconf.php").write_text("<?php $host = 'database';\n")
    (sites / "default" / "sqlconf.php").chmod(0o400)
    (sites / "default" / "empty-dir").mkdir()
    (sites / "latest").symlink_to("default/documents/Zoë Ångström/患者記録.txt")
    os.link(sites / "default" / "sqlconf.php", sites / "default" / "sqlconf.hardlink")
    for path in [sites, *sites.rglob("*")]:
        os.chown(path, 33, 33, follow_symlinks=False)
    documents.chmod(0o2750)

    storage = root / "orthanc-storage"
    for index in range(60):
        digest = hashlib.sha256(str(index).encode()).hexdigest()
        folder = storage / digest[:2] / digest[2:4]
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.choice([0, 1, 4096, 65_537, 150_000])
        (folder / digest).write_bytes(rng.randbytes(size))
    for path in [storage, *storage.rglob("*")]:
        os.chown(path, 999, 999)
        path.chmod(0o700 if path.is_dir() else 0o600)

    datastore = root / "velociraptor-datastore"
    (datastore / "clients" / "C.1234").mkdir(parents=True)
    (datastore / "clients" / "C.1234" / "ping.db").write_bytes(b"\x00\xff" * 5000)
    (datastore / "config.yaml").write_text("Frontend:\n  hostname: edr\n")
    (datastore / "run.sh").write_text("#!/bin/sh\nexit 0\n")
    (datastore / "run.sh").chmod(0o750)
    os.chown(datastore / "config.yaml", 0, 1234)


def tree_snapshot(root: Path) -> dict[str, tuple]:
    """Per path below root (root itself included): kind, mode, owner, group, size, mtime and
    the content's SHA-256 or the link target."""
    snapshot: dict[str, tuple] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        status = path.lstat()
        relative = str(path.relative_to(root))
        if stat.S_ISLNK(status.st_mode):
            snapshot[relative] = ("link", status.st_uid, status.st_gid, os.readlink(path))
        elif stat.S_ISDIR(status.st_mode):
            snapshot[relative] = (
                "dir",
                stat.S_IMODE(status.st_mode),
                status.st_uid,
                status.st_gid,
                status.st_mtime_ns,
            )
        else:
            content = hashlib.sha256(path.read_bytes()).hexdigest()
            snapshot[relative] = (
                "file",
                stat.S_IMODE(status.st_mode),
                status.st_uid,
                status.st_gid,
                status.st_size,
                status.st_mtime_ns,
                status.st_nlink,
                content,
            )
    return snapshot


@dataclass(frozen=True)
class AgeKeys:
    identity: Path
    recipient: str
    other_identity: Path


@dataclass
class BackupRig:
    """What a test needs to run the scripts: directories, keys, database and environment."""

    root: Path
    volumes: Path
    dest: Path
    keys: AgeKeys
    database: MariaDb

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root),
            "TZ": "UTC",
            "BACKUP_DEST": str(self.dest),
            "BACKUP_SOURCE_ROOT": str(self.volumes),
            "BACKUP_AGE_RECIPIENTS": self.keys.recipient,
            "BACKUP_ZSTD_THREADS": "2",
            **self.database.backup_env(),
        }
        env.update(overrides)
        return env

    def run(self, command: str, *args: str, env: dict[str, str] | None = None, check=True):
        result = subprocess.run(
            [str(BIN / command), *args],
            env=env or self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if check:
            assert result.returncode == 0, (
                f"{command} {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def backup(self, **overrides: str):
        return self.run("backup", "run", env=self.env(**overrides))

    def backups(self) -> list[Path]:
        return sorted(p for p in self.dest.iterdir() if (p / "MANIFEST").is_file())

    def restore_arguments(
        self, backup: Path, *extra: str, identity: Path | None = None
    ) -> list[str]:
        """`restore`'s arguments for a full restore of backup into the rig."""
        return [
            "--identity",
            str(identity or self.keys.identity),
            "--volumes-root",
            str(self.volumes),
            *self.database.restore_args(),
            *extra,
            str(backup),
        ]

    def restore(self, backup: Path, *extra: str, identity: Path | None = None, check=True):
        return self.run(
            "restore", *self.restore_arguments(backup, *extra, identity=identity), check=check
        )


def manifest_entries(backup: Path) -> list[dict[str, str]]:
    """The MANIFEST's file lines as dictionaries (comment lines left out)."""
    lines = (backup / "MANIFEST").read_text().splitlines()
    columns = ["sha256", "bytes", "kind", "source", "file"]
    return [dict(zip(columns, line.split("\t"), strict=True)) for line in lines if line[:1] != "#"]


def volume_snapshots(rig: BackupRig) -> dict[str, dict]:
    return {name: tree_snapshot(rig.volumes / name) for name in VOLUME_NAMES}


def wipe(rig: BackupRig) -> None:
    """Drops the databases and empties the volumes, leaving a file a restore must remove."""
    for database in DATABASES:
        rig.database.sql(f"DROP DATABASE {database}")
    for name in VOLUME_NAMES:
        volume = rig.volumes / name
        shutil.rmtree(volume)
        volume.mkdir()
        (volume / "stale-file-from-after-the-backup").write_text("must disappear")


def manifest_end(body: str) -> str:
    """The last line of a manifest whose other lines are `body`."""
    return f"# end\t{hashlib.sha256(body.encode()).hexdigest()}\n"


def rewrite_manifest(backup: Path, edit: Callable[[list[str]], list[str]]) -> None:
    """Edits the MANIFEST's lines and writes a matching end line, as anyone who can write the
    destination can: the end line catches damage and careless edits, not a forger."""
    lines = (backup / "MANIFEST").read_text().splitlines(keepends=True)
    assert lines[-1].startswith("# end\t"), f"the MANIFEST has no end line: {lines[-1]!r}"
    body = "".join(edit(lines[:-1]))
    (backup / "MANIFEST").write_text(body + manifest_end(body))


def resign_archive(backup: Path, file: str) -> None:
    """Gives a changed archive's MANIFEST line its new size and SHA-256."""
    content = (backup / file).read_bytes()

    def edit(lines: list[str]) -> list[str]:
        edited = []
        for line in lines:
            fields = line.rstrip("\n").split("\t")
            if not line.startswith("#") and fields[-1] == file:
                fields[:2] = [hashlib.sha256(content).hexdigest(), str(len(content))]
                line = "\t".join(fields) + "\n"
            edited.append(line)
        return edited

    rewrite_manifest(backup, edit)


@contextmanager
def mounted(target: Path, *mount_arguments: str) -> Iterator[Path]:
    """`mount ARGUMENTS TARGET` for the block, unmounted after it (the tests run as root)."""
    subprocess.run(["mount", *mount_arguments, str(target)], check=True, capture_output=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True, capture_output=True)


@contextmanager
def read_only_view(source: Path, target: Path) -> Iterator[Path]:
    """A read-only bind mount of source at target, as a container's `-v SOURCE:TARGET:ro`."""
    target.mkdir()
    with mounted(target, "--bind", str(source)):
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(target)], check=True, capture_output=True
        )
        yield target


class PausedTool:
    """A stand-in for a tool on PATH that stops the first time it is called with `trigger` among
    its arguments, until the test releases it, then runs the real tool: a script caught in the
    middle of its work, with no sleep and no timing."""

    def __init__(self, directory: Path, tool: str, trigger: str) -> None:
        directory.mkdir()
        self.bin_dir = directory
        self.ready = directory / "ready"
        self.gate = directory / "gate"
        os.mkfifo(self.ready)
        os.mkfifo(self.gate)
        script = directory / tool
        script.write_text(
            "#!/bin/bash\n"
            f'if [[ " $* " == *" {trigger} "* && ! -e "{directory}/paused" ]]; then\n'
            f'  : > "{directory}/paused"\n'
            f'  echo paused > "{self.ready}"\n'
            f'  read -r _ < "{self.gate}"\n'
            "fi\n"
            f'exec {shutil.which(tool)} "$@"\n'
        )
        script.chmod(0o755)
        # Opened now without blocking, so the stand-in's write never waits for a reader.
        self._ready_fd = os.open(self.ready, os.O_RDONLY | os.O_NONBLOCK)
        self._released = False

    def __enter__(self) -> "PausedTool":
        return self

    def __exit__(self, *failure) -> None:
        """Releases a stand-in still paused (a test that failed midway), so its process ends."""
        if not self._released:
            try:
                gate = os.open(self.gate, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # nobody waits at the gate
                pass
            else:
                os.write(gate, b"go\n")
                os.close(gate)
            self._released = True
        os.close(self._ready_fd)

    def path(self) -> str:
        return f"{self.bin_dir}:{os.environ['PATH']}"

    def wait_until_paused(self, process: subprocess.Popen, timeout: float = 120) -> None:
        """Returns once the stand-in has stopped; fails if the process ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self._ready_fd], [], [], 1)
            if readable and os.read(self._ready_fd, 64):
                return
            assert process.poll() is None, f"it ended before pausing: {process.communicate()}"
        pytest.fail(f"the stand-in did not pause within {timeout} s")

    def release(self) -> None:
        with open(self.gate, "w") as gate:
            gate.write("go\n")
        self._released = True


@contextmanager
def paused_run(
    rig, scratch: Path, command: list[str], tool: str, trigger: str
) -> Iterator[tuple[subprocess.Popen, PausedTool]]:
    """Starts `command` with `tool` replaced by a PausedTool on `trigger` and yields once it has
    paused there. Leaving the block releases a stand-in still paused before waiting for the
    process, so a failing test never hangs."""
    paused = PausedTool(scratch, tool, trigger)
    with (
        subprocess.Popen(
            command,
            env=rig.env(PATH=paused.path()),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process,
        paused,
    ):
        paused.wait_until_paused(process)
        yield process, paused

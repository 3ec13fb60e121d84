"""Encrypted scheduled backups: the settings, the job built from backup/Dockerfile, and the
restore runbook rendered with the stack's names."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from shlex import join
from typing import TYPE_CHECKING, Annotated

import pulumi
import pulumi_docker as docker
from pydantic import Field, ValidationInfo, field_validator

from components.config_model import CpuShares, MemoryMb, PinnedImage, Problem, StackModel
from components.cron import parse_cron

if TYPE_CHECKING:
    from components.database import Database
    from components.platform import Platform
    from components.volumes import ServiceVolume

AGE_RECIPIENT = r"^age1[02-9ac-hj-np-z]{58}$"
MINIMUM_PROD_DAILY = 7
# Prod backs up daily or tighter, so its recovery point is never older than a day.
MAXIMUM_PROD_RPO_HOURS = 24
# Host directories the archives' writable bind must not be, lie in or contain: the host's system
# and kernel interfaces, and Docker's state and socket.
SENSITIVE_HOST_PATHS = (
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/usr",
    "/bin",
    "/sbin",
    "/run",
    "/var/run",
    "/var/lib/docker",
)
HOST_LIBRARY_DIRECTORIES = ("lib", "lib32", "lib64", "libx32")
DOCKER_SOCKET = "docker.sock"
# The official image backup/Dockerfile names as its default BASE; keep the two equal.
DEFAULT_BASE_IMAGE = "debian:12.12-slim"


class RetentionSettings(StackModel):
    """How many daily and weekly backups are kept."""

    daily: Annotated[int, Field(ge=1, le=366)] = 7
    weekly: Annotated[int, Field(ge=0, le=260)] = 4


class BackupSettings(StackModel):
    """Schedule, recovery point objective, encryption recipients, retention and destination."""

    enabled: bool = Field(default=False, description="run the backup job (prod requires it)")
    rpo_hours: Annotated[int, Field(ge=1, le=168)] = Field(
        default=24,
        description="recovery point objective; the job turns unhealthy past it",
    )
    schedule: str = Field(
        default="0 2 * * *",
        validate_default=True,
        description="cron expression in UTC; no gap between runs longer than rpoHours",
    )
    recipients: tuple[Annotated[str, Field(pattern=AGE_RECIPIENT)], ...] = Field(
        default=(),
        validate_default=True,
        description="age public keys (age1...) the archives are encrypted to; the private "
        "key stays offline",
    )
    retention: RetentionSettings = RetentionSettings()
    host_path: str | None = Field(
        default=None,
        description="absolute host directory of its own (not a system or Docker path); a named "
        "volume when unset",
    )
    memory_mb: MemoryMb = 512
    cpu_shares: CpuShares = 256
    base_image: PinnedImage = Field(
        default=DEFAULT_BASE_IMAGE,
        description="the image backup/Dockerfile builds on (its BASE build argument)",
    )

    @field_validator("schedule")
    @classmethod
    def _meets_rpo(cls, schedule: str, info: ValidationInfo) -> str:
        gap = parse_cron(schedule).longest_gap()
        rpo_hours = info.data.get("rpo_hours")
        if rpo_hours is not None and gap.total_seconds() > rpo_hours * 3600:
            raise ValueError(
                f"leaves up to {gap} between backups, longer than the recovery point "
                f"objective rpoHours={rpo_hours}"
            )
        return schedule

    @field_validator("recipients")
    @classmethod
    def _encrypts_when_enabled(cls, recipients: tuple[str, ...], info: ValidationInfo):
        if info.data.get("enabled") and not recipients:
            raise ValueError("enabled backups need at least one age recipient to encrypt to")
        return recipients

    @field_validator("host_path")
    @classmethod
    def _is_a_directory_of_its_own(cls, path: str | None) -> str | None:
        if path is None:
            return path
        if not PurePosixPath(path).is_absolute():
            raise ValueError("must be an absolute host path")
        reason = sensitive_host_path(path)
        if reason:
            raise ValueError(
                f"must not be a system or Docker path: it {reason}, and the backup job writes "
                "there as root; use a directory of its own such as /srv/hospital-backups"
            )
        return path

    def prod_problems(self, key: str) -> Iterable[Problem]:
        """What prod asks beyond the model's own rules."""
        if not self.enabled:
            yield Problem(f"{key}.enabled", self.enabled, "prod must back up its PHI volumes")
        if self.rpo_hours > MAXIMUM_PROD_RPO_HOURS:
            yield Problem(
                f"{key}.rpoHours",
                self.rpo_hours,
                f"prod backs up daily or tighter: the recovery point objective must be at most "
                f"{MAXIMUM_PROD_RPO_HOURS} hours",
            )
        if self.retention.daily < MINIMUM_PROD_DAILY:
            yield Problem(
                f"{key}.retention.daily",
                self.retention.daily,
                f"prod must keep at least {MINIMUM_PROD_DAILY} daily backups",
            )


# Limitation: a path is judged as written; a symbolic link on the Docker host that leads into a
# system directory is not seen, because the settings are validated away from that host.
def sensitive_host_path(path: str) -> str | None:
    """Why an absolute host path must not hold the archives, or None when it may."""
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            parts = parts[:-1]
        elif part not in ("", "."):
            parts.append(part)
    if not parts:
        return "is the host's root directory"
    if DOCKER_SOCKET in parts:
        return "leads to Docker's socket"
    if parts[0] in HOST_LIBRARY_DIRECTORIES:
        return f"lies in /{parts[0]}, the host's libraries"
    for sensitive in SENSITIVE_HOST_PATHS:
        guarded = sensitive.strip("/").split("/")
        if parts[: len(guarded)] == guarded:
            return f"lies in {sensitive}"
        if guarded[: len(parts)] == parts:
            return f"contains {sensitive}"
    return None


# ----- the component

SERVICE = "backup"
BUILD_CONTEXT = Path(__file__).resolve().parent.parent / "backup"
IMAGE_REPOSITORY = "hospital-backup"
TIME_ZONE = "UTC"

# Paths inside the image built from backup/Dockerfile.
DEST_PATH = "/backups"
SOURCE_ROOT = "/volumes"
CONFIG_DIR = "/etc/backup-job"
DB_PASSWORD_PATH = f"{CONFIG_DIR}/db-password"
DB_CA_PATH = f"{CONFIG_DIR}/db-ca.pem"
HEALTHCHECK = ("CMD", "/usr/local/bin/backup-healthcheck")
RESTORE_ENTRYPOINT = "restore"
BACKUP_PLACEHOLDER = f"{DEST_PATH}/BACKUP"
IDENTITY_PLACEHOLDER = "/path/to/identity.txt"

# Reading volumes whose files other uids own with mode 0600/0700 (MariaDB, Orthanc) takes
# DAC_READ_SEARCH, and Docker grants capabilities to uid 0 only; every other one is dropped.
RUN_AS = "0:0"
CAPABILITIES = ("DAC_READ_SEARCH",)
DESTINATION_CLASS = "backup"


@dataclass(frozen=True)
class DatabaseSource:
    """Where the job dumps from: the server, the account and the volume that holds its files."""

    host: str
    port: int
    user: str
    schema: str
    data_volume: str | None
    binlog_glob: str


def image_reference(base_image: str, context: Path = BUILD_CONTEXT) -> str:
    """`hospital-backup:<12 hex>`, a digest of the build context and the base image, so any change
    to the scripts or the Dockerfile builds and rolls out a new image (documentation does not)."""
    digest = hashlib.sha256(base_image.encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file() and p.suffix != ".md"):
        digest.update(str(path.relative_to(context)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:12]}"


def job_environment(settings: BackupSettings, database: DatabaseSource | None) -> dict[str, str]:
    """The variables backup/bin/* read; no secret among them (the password is a file)."""
    environment = {
        "BACKUP_SCHEDULE": settings.schedule,
        "BACKUP_RPO_HOURS": str(settings.rpo_hours),
        "BACKUP_AGE_RECIPIENTS": " ".join(settings.recipients),
        "BACKUP_KEEP_DAILY": str(settings.retention.daily),
        "BACKUP_KEEP_WEEKLY": str(settings.retention.weekly),
        "BACKUP_DEST": DEST_PATH,
        "BACKUP_SOURCE_ROOT": SOURCE_ROOT,
        "TZ": TIME_ZONE,
    }
    if database is not None:
        environment |= {
            "BACKUP_DB_HOST": database.host,
            "BACKUP_DB_PORT": str(database.port),
            "BACKUP_DB_USER": database.user,
            "BACKUP_DB_PASSWORD_FILE": DB_PASSWORD_PATH,
            "BACKUP_DB_CA_FILE": DB_CA_PATH,
            "BACKUP_DB_DATABASES": database.schema,
            "BACKUP_DB_BINLOG_GLOB": database.binlog_glob,
        }
        if database.data_volume:
            environment["BACKUP_DB_VOLUME"] = database.data_volume
    return environment


def recipient_fingerprint(recipient: str) -> str:
    """A short, stable name for an age recipient: the first 16 hex of its SHA-256."""
    return hashlib.sha256(recipient.encode()).hexdigest()[:16]


def restore_commands(
    *,
    image: str,
    archives: str,
    volumes: list[str],
    writers: list[str],
    job: str,
    database_container: str | None,
    root_password_file: str,
) -> dict[str, list]:
    """The restore as argv lists with this stack's names, `BACKUP_PLACEHOLDER` and
    `IDENTITY_PLACEHOLDER` standing for the operator's choices; `database` is a pipe of two.

    One-off containers of the backup image read the archives and an identity file that the
    operator brings, never stored on the host. They run as root with Docker's default
    capabilities (the archives are root's; restored files get their owners back) and without a
    network. The backup job (`job`) is stopped with the services and started after them, so no
    run archives half-restored data or prunes the backup being restored; `restore` also holds
    the job's lock while it works.
    """
    one_off = ["docker", "run", "--rm", "--network", "none", "--user", RUN_AS]
    one_off += [
        "-v",
        f"{archives}:{DEST_PATH}:ro",
        "-v",
        f"{IDENTITY_PLACEHOLDER}:/run/identity:ro",
    ]
    restore = ["--entrypoint", RESTORE_ENTRYPOINT, image, "--identity", "/run/identity"]
    mounts = [arg for name in volumes for arg in ("-v", f"{name}:{SOURCE_ROOT}/{name}")]
    database = None
    if database_container:
        # The SQL ends with a query whose one-line answer names the tables and rows restored.
        load = (
            f'MYSQL_PWD="$(cat {root_password_file})" exec mariadb --user=root '
            "--batch --skip-column-names"
        )
        database = [
            [*one_off, *restore, "--sql-to-stdout", "--sql-report", BACKUP_PLACEHOLDER],
            ["docker", "exec", "-i", database_container, "sh", "-c", load],
        ]
    listing = ["docker", "run", "--rm", "--user", RUN_AS, "-v", f"{archives}:{DEST_PATH}:ro"]
    return {
        "list": [*listing, "--entrypoint", "ls", image, DEST_PATH],
        # Verification reads every archive whatever is skipped; skipping both spares it the
        # volume targets and the database connection, which it would otherwise ask for.
        "verify": [
            *one_off,
            *restore,
            *("--skip-database", "--skip-volumes", "--verify-only", BACKUP_PLACEHOLDER),
        ],
        "stop": ["docker", "stop", job, *writers],
        "database": database,
        # Every target must be one of the mounts above: a path no volume backs would vanish with
        # the container, and a mounted volume the backup has no archive of stops the restore.
        "volumes": [
            *one_off,
            *mounts,
            *restore,
            *("--skip-database", "--require-mounts", "--volumes-root", SOURCE_ROOT),
            BACKUP_PLACEHOLDER,
        ],
        "start": ["docker", "start", *writers, job],
    }


def restore_steps(commands: dict[str, list]) -> list[str]:
    """The runbook an operator reads, rendered from `restore_commands`."""
    steps = [
        "Choose BACKUP, a directory under the destination (oldest first): "
        f"`{join(commands['list'])}`.",
        "Verify it: checksums against its MANIFEST and the identity against every archive, "
        f"writing nothing: `{join(commands['verify'])}`.",
        "Stop the backup job, so that no run archives half-restored data or prunes the chosen "
        f"backup, and the services whose volumes are restored: `{join(commands['stop'])}`.",
    ]
    if commands["database"]:
        steps.append(
            "Reload the database through the root account inside the database container: the "
            "dump is decrypted whole first, then its schemas are dropped and recreated, and the "
            "tables and rows restored are printed: "
            f"`{' | '.join(join(command) for command in commands['database'])}`."
        )
    steps += [
        "Restore every volume, each mounted at its own target (a target that is not a mount, or "
        "a mounted volume the backup has no archive of, stops the restore before anything is "
        "written). Each archive is extracted beside the volume's content, which is swapped for "
        "it by renames only once every archive extracted whole; owners and modes come back: "
        f"`{join(commands['volumes'])}`. It prints the files, directories and bytes of each.",
        "Start the services and the backup job again: "
        f"`{join(commands['start'])}`, and wait until each is healthy.",
        "Record the test as the `restore-test` attestation in the stack file.",
        "`make restore STACK=<stack> BACKUP=<name> IDENTITY=<file>` runs the same commands.",
    ]
    return steps


class Backup(pulumi.ComponentResource):
    """The scheduled backup job on the data zone, built from backup/Dockerfile.

    It dumps the database over TLS with the read-only backup account, archives every phi and
    config volume (mounted read-only, found by their labels), encrypts to the stack's age
    recipients and keeps the archives on a volume of their own. Others read `container` and
    `plan` (the `backup` export).
    """

    def __init__(
        self,
        name: str,
        platform: Platform,
        database: Database | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("hospital:components:Backup", name, None, opts)
        # Imported here: the platform imports the settings, which import this module.
        from components.database import BINLOG_BASENAME, ROOT_PASSWORD_PATH
        from components.database import SERVICE as DATABASE_SERVICE
        from components.platform import Healthcheck, Mount, Upload
        from components.volumes import BACKED_UP_CLASSES

        settings = platform.settings.backup
        self.image = image_reference(settings.base_image)
        self._build_image(platform)
        self.destination = self._destination(platform)

        covered = platform.volumes.of_class(*sorted(BACKED_UP_CLASSES))
        data_volume = next(
            (v.name for v in covered if v.service == DATABASE_SERVICE and v.purpose == "data"),
            None,
        )
        source = None
        uploads = []
        if database is not None:
            source = DatabaseSource(
                host=database.host,
                port=database.port,
                user=database.backup_user,
                schema=database.schema,
                data_volume=data_volume,
                binlog_glob=f"{BINLOG_BASENAME}.*",
            )
            password = platform.credentials.password(database.backup_password_account)
            uploads = [
                Upload(DB_PASSWORD_PATH, password, secret=True),
                Upload(DB_CA_PATH, database.ca_cert_pem),
            ]

        self.container = platform.container(
            SERVICE,
            image=self.image,
            zones=["data"],
            healthcheck=Healthcheck(
                test=HEALTHCHECK, interval="60s", timeout="30s", retries=2, start_period="60s"
            ),
            memory_mb=settings.memory_mb,
            cpu_shares=settings.cpu_shares,
            parent=self,
            envs=job_environment(settings, source),
            uploads=uploads,
            mounts=[
                *(Mount(v, f"{SOURCE_ROOT}/{v.name}", read_only=True) for v in covered),
                Mount(self.destination, DEST_PATH),
            ],
            capabilities=CAPABILITIES,
            user=RUN_AS,
            # Read-only root: the password file and the CA arrive through a file carrier; the
            # job writes only to /backups and the /tmp tmpfs.
            depends_on=[database.container] if database is not None else [],
        )

        writers = sorted(
            {platform.container_name(v.service) for v in covered if v.name != data_volume}
        )
        self.plan = {
            "enabled": True,
            "schedule": settings.schedule,
            "timeZone": TIME_ZONE,
            "rpoHours": settings.rpo_hours,
            "retention": settings.retention.model_dump(mode="json"),
            "destination": settings.host_path or self.destination.name,
            "recipients": list(settings.recipients),
            "recipientFingerprints": [recipient_fingerprint(r) for r in settings.recipients],
            "container": platform.container_name(SERVICE),
            "image": self.image,
            "baseImage": settings.base_image,
            "coveredVolumes": [v.name for v in covered if v.name != data_volume],
            "database": None
            if source is None
            else {"schema": source.schema, "host": source.host, "binlogVolume": data_volume},
        }
        commands = restore_commands(
            image=self.image,
            archives=self.destination.name,
            volumes=self.plan["coveredVolumes"],
            writers=writers,
            job=platform.container_name(SERVICE),
            database_container=platform.container_name(DATABASE_SERVICE) if source else None,
            root_password_file=ROOT_PASSWORD_PATH,
        )
        self.plan["restoreCommands"] = commands
        self.plan["restoreSteps"] = restore_steps(commands)
        if platform.settings.is_prod:
            pulumi.log.info(
                f"backup: {len(covered)} phi/config volumes, encrypted to "
                f"{len(settings.recipients)} age recipient(s), schedule '{settings.schedule}'",
                self,
            )
        self.register_outputs({"plan": self.plan})

    def _build_image(self, platform: Platform) -> None:
        """Builds backup/Dockerfile into the local image `self.image` before any container uses
        it; a RemoteImage with a build pulls nothing."""
        build = docker.RemoteImage(
            "backup-image",
            docker.RemoteImageArgs(
                name=self.image,
                build=docker.RemoteImageBuildArgs(
                    context=str(BUILD_CONTEXT),
                    dockerfile="Dockerfile",
                    build_args={"BASE": platform.settings.backup.base_image},
                    labels={"hospital.service": SERVICE},
                ),
                keep_locally=True,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Limitation: the platform has no public way to hand it a built image, so the build is
        # registered under its reference, where Platform.image() finds it instead of pulling.
        platform._images[self.image] = build

    def _destination(self, platform: Platform) -> ServiceVolume:
        """The archives' volume, or a volume bound to the host directory from the settings.

        Its data class is `backup` rather than phi: it holds only ciphertext, and it must not be
        mounted into the job it receives from."""
        host_path = platform.settings.backup.host_path
        bind = {"type": "none", "o": "bind", "device": host_path} if host_path else None
        return platform.volumes.create(
            SERVICE, "archives", DESTINATION_CLASS, self, driver_opts=bind
        )


def disabled_plan() -> dict:
    """The `backup` export of a stack that runs no backup job."""
    return {"enabled": False}

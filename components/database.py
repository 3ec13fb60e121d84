"""MariaDB for OpenEMR: the official image's contract, its settings, the component, and the pure
renderers of its server configuration and of the account hook that runs at every start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import pulumi
from pydantic import Field

from components.config_model import CpuShares, MemoryMb, PinnedImage, StackModel

if TYPE_CHECKING:
    from components.platform import Platform

IMAGE = "mariadb:11.4.8"
PORT = 3306
ALIAS = "mariadb"
SERVICE = "database"

# Paths inside the official image (MariaDB/mariadb-docker, 11.4/Dockerfile and
# docker-entrypoint.sh): the data directory is its VOLUME, /etc/mysql/conf.d is read last.
DATA_PATH = "/var/lib/mysql"
CONF_DIR = "/etc/mysql/conf.d"
SERVER_CONFIG_PATH = f"{CONF_DIR}/50-hospital.cnf"
LOG_PATH = "/var/log/mysql"
SOCKET_DIR = "/run/mysqld"
SCRATCH_PATH = "/tmp"
AUDIT_LOG_PATH = f"{LOG_PATH}/server_audit.log"
HOSPITAL_DIR = "/etc/mysql/hospital"
TLS_CA_PATH = f"{HOSPITAL_DIR}/tls/ca.pem"
TLS_CERT_PATH = f"{HOSPITAL_DIR}/tls/server.pem"
TLS_KEY_PATH = f"{HOSPITAL_DIR}/tls/server-key.pem"
SECRETS_DIR = f"{HOSPITAL_DIR}/secrets"
ACCOUNTS_HOOK_PATH = f"{HOSPITAL_DIR}/accounts.sql"
ROOT_PASSWORD_PATH = f"{SECRETS_DIR}/root-password"
APP_PASSWORD_PATH = f"{SECRETS_DIR}/app-password"
BACKUP_PASSWORD_PATH = f"{SECRETS_DIR}/backup-password"
ENTRYPOINT = "docker-entrypoint.sh"
SERVER_COMMAND = "mariadbd"

# Binary logs stay in the data directory: they hold every changed row (PHI), so they share the
# data volume's class and backup, and they are what point-in-time recovery replays after a dump.
# Limitation: the entrypoint creates the application account with binary logging on, so the
# first binary log holds that account's CREATE USER with its password until it expires after
# binlogRetentionDays; the audit log masks it.
BINLOG_BASENAME = "mariadb-bin"
AUDIT_ROTATE_SIZE_BYTES = 100 * 1024 * 1024
AUDIT_ROTATIONS = 30
AUDIT_EVENTS = ("CONNECT", "QUERY_DDL", "QUERY_DCL")
TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")
# Share of the container's memory limit given to InnoDB's page cache (the default is 128 MiB
# whatever the limit); the rest covers connections, sorts and the server itself.
BUFFER_POOL_PERCENT = 50
# OpenEMR's installer creates its own databases with this collation; the schema MariaDB
# creates for it uses the same.
CHARACTER_SET = "utf8mb4"
COLLATION = "utf8mb4_general_ci"

ROOT_ACCOUNT = "database-root"
APP_ACCOUNT = "database-app"
BACKUP_ACCOUNT = "database-backup"
BACKUP_USER = "backup"

# The variables this component sets are read by the image's entrypoint
# (MariaDB/mariadb-docker 11.4/docker-entrypoint.sh): `_mariadb_file_env` in docker_setup_env
# reads MARIADB_ROOT_HOST, MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD and
# MARIADB_ROOT_PASSWORD, each also as `<name>_FILE`. All are ignored once the data exists.

# The entrypoint starts as root to chown the data directory and the audit log directory, then
# re-executes itself as `mysql` through gosu; the server itself holds no capability.
CAPABILITIES = (
    "CHOWN",  # chown of the data directory, the socket directory and the audit log volume
    "DAC_READ_SEARCH",  # root walks mysql-owned 0700 schema directories during that chown
    "SETUID",  # gosu mysql
    "SETGID",  # gosu mysql (setgroups)
)

# The health check script ships in the image; it reads the credentials of a USAGE-only
# `healthcheck` account that the entrypoint writes to <datadir>/.my-healthcheck.cnf at first
# start, so it needs none from us. --su-mysql runs it as the owner of that 0600 file.
HEALTHCHECK = ("CMD", "healthcheck.sh", "--su-mysql", "--connect", "--innodb_initialized")

APP_PASSWORD_ROTATION_RUNBOOK = (
    "MariaDB reads its MARIADB_* variables only when it creates the data directory, and "
    "OpenEMR keeps the application password in sites/default/sqlconf.php from its first setup. "
    "The database applies the root and backup passwords of a new credentials.rotation stamp by "
    "itself at the next start; the application password needs two steps after `pulumi up`: "
    "`ALTER USER '<user>'@'%' IDENTIFIED BY '<new database-app password>'` as root inside the "
    "database container, then the same value as $pass in the EMR's "
    "sites/default/sqlconf.php."
)


class DatabaseSettings(StackModel):
    """MariaDB: image, schema and account names, memory and binary-log retention."""

    image: PinnedImage = IMAGE
    memory_mb: MemoryMb = 1024
    cpu_shares: CpuShares = 1024
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")] = "openemr"
    user: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")] = "openemr"
    binlog_retention_days: Annotated[int, Field(ge=1, le=90)] = 7


@dataclass(frozen=True)
class ServerPaths:
    """Where the rendered server configuration points MariaDB."""

    tls_ca: str = TLS_CA_PATH
    tls_cert: str = TLS_CERT_PATH
    tls_key: str = TLS_KEY_PATH
    secrets_dir: str = SECRETS_DIR
    accounts_hook: str = ACCOUNTS_HOOK_PATH
    audit_log: str = AUDIT_LOG_PATH


@dataclass(frozen=True)
class HookAccounts:
    """What the start-up hook keeps in line with the uploaded password files."""

    schema: str
    backup_user: str = BACKUP_USER
    root_password_file: str = ROOT_PASSWORD_PATH
    backup_password_file: str = BACKUP_PASSWORD_PATH


class Database(pulumi.ComponentResource):
    """MariaDB on the data zone only, TLS from the PKI, audited, binary-logged, never published.

    Others read: `container` (to wait for), `host` and `port`, `schema`, `ca_cert_pem`,
    `app_user` with `app_password_account`, and `backup_user` with `backup_password_account`.
    """

    def __init__(
        self, name: str, platform: Platform, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hospital:components:Database", name, None, opts)
        # Imported here: the platform imports the settings, which import this module.
        from components.platform import Healthcheck, Mount, Upload

        settings = platform.settings
        database = settings.database
        container_name = platform.container_name(SERVICE)

        self.host = ALIAS
        self.port = PORT
        self.schema = database.name
        self.app_user = database.user
        self.app_password_account = APP_ACCOUNT
        self.backup_user = BACKUP_USER
        self.backup_password_account = BACKUP_ACCOUNT
        self.rotation_runbook = APP_PASSWORD_ROTATION_RUNBOOK

        certificate = platform.pki.issue(SERVICE, [ALIAS, container_name])
        self.ca_cert_pem = certificate.ca_cert_pem

        data = platform.volumes.create(SERVICE, "data", "phi", self)
        logs = platform.volumes.create(SERVICE, "logs", "logs", self)
        scratch = platform.volumes.create(SERVICE, "tmp", "scratch", self)

        paths, accounts = ServerPaths(), HookAccounts(schema=database.name)
        uploads = [
            Upload(SERVER_CONFIG_PATH, render_server_config(database, paths, settings.is_prod)),
            Upload(ACCOUNTS_HOOK_PATH, render_accounts_hook(accounts)),
            Upload(TLS_CA_PATH, certificate.ca_cert_pem),
            Upload(TLS_CERT_PATH, certificate.cert_pem),
            Upload(TLS_KEY_PATH, certificate.private_key_pem, secret=True),
        ]
        uploads += [
            Upload(path, platform.credentials.password(account), secret=True)
            for path, account in (
                (accounts.root_password_file, ROOT_ACCOUNT),
                (APP_PASSWORD_PATH, APP_ACCOUNT),
                (accounts.backup_password_file, BACKUP_ACCOUNT),
            )
        ]

        self.container = platform.container(
            SERVICE,
            image=database.image,
            zones=["data"],
            aliases=[ALIAS],
            healthcheck=Healthcheck(test=HEALTHCHECK, start_period="120s"),
            memory_mb=database.memory_mb,
            cpu_shares=database.cpu_shares,
            parent=self,
            envs={
                "MARIADB_ROOT_PASSWORD_FILE": accounts.root_password_file,
                "MARIADB_PASSWORD_FILE": APP_PASSWORD_PATH,
                "MARIADB_DATABASE": database.name,
                "MARIADB_USER": database.user,
                # Root is reachable over the socket inside the container only: OpenEMR's setup
                # finds its schema and account already there and never needs it.
                "MARIADB_ROOT_HOST": "localhost",
            },
            uploads=uploads,
            mounts=[Mount(data, DATA_PATH), Mount(logs, LOG_PATH), Mount(scratch, SCRATCH_PATH)],
            capabilities=CAPABILITIES,
            # The audit log volume arrives root-owned; the server writes it as `mysql`.
            entrypoint=[
                "/bin/sh",
                "-c",
                f'chown mysql:mysql {LOG_PATH} && exec {ENTRYPOINT} "$@"',
                ENTRYPOINT,
            ],
            command=[SERVER_COMMAND],
            # Read-only root: the uploads arrive through a file carrier. The entrypoint and the
            # server write only the data and log volumes, the socket directory (a tmpfs, 1777
            # as in the image) and /tmp, a scratch volume rather than a tmpfs because large
            # sorts and ALTER TABLE spill there and a tmpfs would count against the memory limit.
            tmpfs={SOCKET_DIR: "rw,noexec,nosuid,nodev,size=1m,mode=1777"},
        )

        if settings.is_prod:
            pulumi.log.info("database: TLS required for every client; never published", self)
        self.register_outputs({"host": self.host, "port": self.port, "schema": self.schema})


def render_server_config(database: DatabaseSettings, paths: ServerPaths, is_prod: bool) -> str:
    """The `[mariadbd]` option file: TLS, name resolution, binary log, audit plugin, hook.

    Dev keeps TLS on but lets a client connect without it; prod requires it.
    """
    retention_seconds = database.binlog_retention_days * 24 * 3600
    lines = [
        "# Rendered by the hospital data center program; changes here are overwritten.",
        "[mariadbd]",
        f"character_set_server = {CHARACTER_SET}",
        f"collation_server = {COLLATION}",
        "skip_name_resolve = ON",
        f"innodb_buffer_pool_size = {database.memory_mb * BUFFER_POOL_PERCENT // 100}M",
        "",
        "# TLS with the hospital PKI certificate",
        f"ssl_ca = {paths.tls_ca}",
        f"ssl_cert = {paths.tls_cert}",
        f"ssl_key = {paths.tls_key}",
        f"tls_version = {','.join(TLS_VERSIONS)}",
        f"require_secure_transport = {'ON' if is_prod else 'OFF'}",
        "",
        "# Binary log for point-in-time recovery, kept in the data directory",
        "server_id = 1",
        f"log_bin = {BINLOG_BASENAME}",
        "binlog_format = ROW",
        "sync_binlog = 1",
        f"binlog_expire_logs_seconds = {retention_seconds}",
        "",
        "# Audit: connections and DDL/DCL statements, permanently loaded",
        "plugin_load_add = server_audit",
        "server_audit = FORCE_PLUS_PERMANENT",
        "server_audit_logging = ON",
        f"server_audit_events = {','.join(AUDIT_EVENTS)}",
        "server_audit_output_type = file",
        f"server_audit_file_path = {paths.audit_log}",
        f"server_audit_file_rotate_size = {AUDIT_ROTATE_SIZE_BYTES}",
        f"server_audit_file_rotations = {AUDIT_ROTATIONS}",
        "",
        "# Accounts hook: reads the password files; LOAD_FILE is confined to their directory",
        f"secure_file_priv = {paths.secrets_dir}",
        f"init_file = {paths.accounts_hook}",
    ]
    return "\n".join(lines) + "\n"


def render_accounts_hook(accounts: HookAccounts) -> str:
    """SQL the server runs at every start (`init_file`), one statement per line.

    It creates the backup account with the grants a consistent dump needs and sets the backup
    and root passwords from their files, so a new rotation stamp reaches the running database
    with the container that carries the new files. Nothing here is binary-logged. The root
    password is left alone while the entrypoint's first-start server runs (skip_networking),
    which still logs in as root without one.
    """
    backup = f"'{accounts.backup_user}'@'%'"
    backup_password = _password_from(accounts.backup_password_file)
    root_password = _password_from(accounts.root_password_file)
    set_root = f"CONCAT('ALTER USER ''root''@''localhost'' IDENTIFIED BY ', {root_password})"
    statements = [
        "SET SESSION sql_log_bin = 0",
        f"CREATE USER IF NOT EXISTS {backup}",
        f"EXECUTE IMMEDIATE CONCAT('ALTER USER {_sql_quoted(backup)} IDENTIFIED BY ', "
        f"{backup_password})",
        f"ALTER USER {backup} REQUIRE SSL",
        # mariadb-dump --single-transaction --routines --events --triggers: rows, views,
        # triggers and events of the schema, routine bodies from mysql.proc. No LOCK TABLES
        # (the transaction snapshot replaces locking), no RELOAD, no write privilege.
        f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON `{accounts.schema}`.* TO {backup}",
        f"GRANT SELECT ON `mysql`.`proc` TO {backup}",
        f"EXECUTE IMMEDIATE IF(@@skip_networking, 'DO 0', {set_root})",
    ]
    return "".join(f"{statement};\n" for statement in statements)


def _password_from(path: str) -> str:
    """An SQL expression for the quoted content of a password file."""
    return f"QUOTE(LOAD_FILE('{path}'))"


def _sql_quoted(text: str) -> str:
    return text.replace("'", "''")

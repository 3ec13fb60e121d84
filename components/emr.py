"""OpenEMR: the openemr/openemr image's contract, its settings and the component that runs it
behind the gateway, on the clinical zone for users and the data zone for its database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import pulumi
from pydantic import Field

from components.config_model import CpuShares, MemoryMb, PinnedImage, StackModel

if TYPE_CHECKING:
    from components.database import Database
    from components.platform import Platform, WebSite

IMAGE = "openemr/openemr:8.0.0"
HTTP_PORT = 80
ALIAS = "openemr"
SERVICE = "emr"

# Paths of the image (openemr/openemr-devops, docker/openemr/8.0.0): the site directory holds
# sqlconf.php, keys and every uploaded patient document; /var/log holds Apache and PHP logs.
SITES_PATH = "/var/www/localhost/htdocs/openemr/sites"
LOG_PATH = "/var/log"
# openemr.sh copies this file into sites/default/documents/certificates/mysql-ca when that
# copy is missing; OpenEMR then connects to MySQL with TLS, verifying against it.
DATABASE_CA_PATH = "/root/certs/mysql/server/mysql-ca"

ADMIN_ACCOUNT = "emr-admin"

# The variables this component sets are read by the image: `prepareVariables` in
# utilities/devtoolsLibrary.source (MYSQL_HOST, MYSQL_PORT, MYSQL_ROOT_USER, MYSQL_ROOT_PASS,
# MYSQL_USER, MYSQL_PASS, MYSQL_DATABASE, OE_USER, OE_PASS), and the installer
# (library/classes/Installer.class.php, create_database_user) for FORCE_DATABASE_SSL_CONNECT.
# Compose files for this image also show OE_MYSQL_* and FORCE_HTTPS, which it never reads.
# auto_configure.php splits each `key=value` argument at every "=", and openemr.sh splits the
# argument list at spaces: a password holding one of these is cut short during setup.
INSTALLER_UNSAFE_CHARACTERS = frozenset("= ")

# openemr.sh runs as root: it copies the database CA into the apache-owned site directory,
# chmods the tree after setup, and starts Apache, which binds port 80 and then serves as the
# `apache` user.
CAPABILITIES = (
    "CHOWN",  # ownership fixes of the site directory by the image's upgrade scripts
    "DAC_OVERRIDE",  # root writes into apache-owned 0700 directories (certificates, documents)
    "FOWNER",  # root chmods apache-owned files after the first setup
    "NET_BIND_SERVICE",  # Apache listens on port 80
    "SETUID",  # Apache workers switch to the apache user
    "SETGID",
    "KILL",  # the root Apache parent signals its apache-owned workers on reload and stop
)

# Apache starts only after the first setup has built the schema, which takes 10 minutes or
# more; Docker ignores failed probes during the start period.
HEALTHCHECK = ("CMD", "curl", "-fsS", "-o", "/dev/null", f"http://localhost:{HTTP_PORT}/")
START_PERIOD = "20m"
WAIT_TIMEOUT_S = 1800

NO_PACS_LINK = (
    "OpenEMR has no global setting that points it at a PACS such as Orthanc (its Connectors "
    "settings cover FHIR, eRx, Direct messaging and payment gateways), so the EMR and the PACS "
    "are linked only through the gateway: staff open the PACS viewer at its own address."
)


class EmrSettings(StackModel):
    """OpenEMR: image, memory and the name of its first administrator."""

    image: PinnedImage = IMAGE
    memory_mb: MemoryMb = 1024
    cpu_shares: CpuShares = 1024
    admin_user: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{2,31}$")] = "emr-admin"


class Emr(pulumi.ComponentResource):
    """OpenEMR set up on first start against the database, served by the gateway as `site`."""

    def __init__(
        self,
        name: str,
        platform: Platform,
        database: Database,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("hospital:components:Emr", name, None, opts)
        # Imported here: the platform imports the settings, which import this module.
        from components.credentials import SAFE_SPECIALS
        from components.platform import Healthcheck, Mount, Upload, WebSite

        settings = platform.settings
        emr = settings.emr
        unsafe = installer_unsafe(SAFE_SPECIALS)
        if unsafe:
            pulumi.log.warn(
                "emr: generated passwords may contain "
                + " ".join(repr(character) for character in sorted(unsafe))
                + ", which OpenEMR's first setup cuts at; remove them from the password alphabet",
                self,
            )

        sites = platform.volumes.create(SERVICE, "sites", "phi", self)
        logs = platform.volumes.create(SERVICE, "logs", "logs", self)

        app_password = platform.credentials.password(database.app_password_account)
        self.container = platform.container(
            SERVICE,
            image=emr.image,
            # clinical first: the gateway reaches the web interface there.
            zones=["clinical", "data"],
            aliases=[ALIAS],
            healthcheck=Healthcheck(test=HEALTHCHECK, start_period=START_PERIOD, retries=5),
            memory_mb=emr.memory_mb,
            cpu_shares=emr.cpu_shares,
            parent=self,
            envs=emr_environment(
                emr,
                host=database.host,
                port=database.port,
                schema=database.schema,
                user=database.app_user,
            ),
            # Limitation: the image reads these passwords only from environment variables (it
            # has no *_FILE variants), so they show in `docker inspect`; the inputs are secret.
            # The database root password is not among them: MariaDB creates OpenEMR's schema
            # and account, so setup only logs in and the account stands in for root.
            secret_envs={
                "MYSQL_ROOT_PASS": app_password,
                "MYSQL_PASS": app_password,
                "OE_PASS": platform.credentials.password(ADMIN_ACCOUNT),
            },
            # Limitation: openemr.sh copies the CA into the site volume only when no copy is
            # there yet, so a later change of CA (e.g. to the hospital's own) needs that copy,
            # sites/default/documents/certificates/mysql-ca, removed before the next start.
            uploads=[Upload(DATABASE_CA_PATH, database.ca_cert_pem)],
            mounts=[Mount(sites, SITES_PATH), Mount(logs, LOG_PATH)],
            capabilities=CAPABILITIES,
            # Limitation: the root file system stays writable: openemr.sh edits php.ini,
            # writes /etc/ssl and removes the setup scripts from htdocs on first start.
            read_only=False,
            # No size-capped tmpfs: PHP stages uploaded patient documents and sessions in /tmp.
            tmpfs={},
            depends_on=[database.container],
            wait_timeout_s=WAIT_TIMEOUT_S,
        )

        self.site: WebSite = WebSite(
            service=SERVICE,
            host_name=settings.host_name(SERVICE),
            upstream_host=ALIAS,
            upstream_port=HTTP_PORT,
            zone="clinical",
            listen_address=str(settings.addresses.edge),
            listen_port=settings.gateway.https_port,
        )
        self.https_endpoint = endpoint(self.site)
        self.register_outputs({"endpoint": self.https_endpoint})


def emr_environment(
    emr: EmrSettings, *, host: str, port: int, schema: str, user: str
) -> dict[str, str]:
    """The plain variables of the EMR container: where its database is and who administers it.

    OpenEMR's account also stands in as the setup's "root" (MYSQL_ROOT_USER): the schema and the
    account exist before setup starts, so setup only logs in with it and never creates anything.

    TLS to the database is on in every stack; the installer also creates OpenEMR's account with
    REQUIRE SSL if it ever has to create it. No OPENEMR_SETTING_* variable is set: the image
    applies those with `mariadb --skip-ssl`, which a database requiring TLS refuses, and the
    failure restarts the first setup in a loop.
    """
    return {
        "MYSQL_HOST": host,
        "MYSQL_PORT": str(port),
        "MYSQL_DATABASE": schema,
        "MYSQL_USER": user,
        "MYSQL_ROOT_USER": user,
        "OE_USER": emr.admin_user,
        "FORCE_DATABASE_SSL_CONNECT": "1",
    }


def endpoint(site: WebSite) -> str:
    """The staff URL of a site: `https://emr.<domain>` with the port unless it is 443."""
    port = "" if site.listen_port == 443 else f":{site.listen_port}"
    return f"https://{site.host_name}{port}/"


def installer_unsafe(specials: str) -> frozenset[str]:
    """The characters of a password alphabet that OpenEMR's first setup would cut at."""
    return frozenset(specials) & INSTALLER_UNSAFE_CHARACTERS

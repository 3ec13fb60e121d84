"""Velociraptor EDR: the image contract, its settings, the server component and the rendering of
the hospital artifacts it serves. The GUI is published only by the gateway, on the management
address; the frontend for agents only on the agents' address.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pulumi
import yaml
from pydantic import Field, field_validator

from components.config_model import CpuShares, MemoryMb, PinnedImage, Port, StackModel
from components.pacs import EDR_MONITOR_ACCOUNT, USER_NAMES

if TYPE_CHECKING:
    from components.platform import Platform, WebSite

IMAGE = "ghcr.io/velocidex/velociraptor-server:0.77.3"
MINIMUM_VERSION = (0, 77, 3)
ALIAS = "velociraptor"
SERVICE = "edr"
ADMIN_ACCOUNT = "edr-admin"
ADMIN_USER = "admin"
"""The user the image's entrypoint creates at first start (`user add admin ...`)."""

# The image's contract (Docker/entrypoint and Docker/init.vql of the Velociraptor repository):
# the entrypoint reads these variables, and init.vql builds the first server config from them.
HOSTNAME_VARIABLE = "VELOCIRAPTOR_HOSTNAME"
FRONTEND_PORT_VARIABLE = "VELOCIRAPTOR_FRONTEND_PORT"
GUI_PORT_VARIABLE = "VELOCIRAPTOR_GUI_PORT"
DATASTORE_VARIABLE = "VELOCIRAPTOR_DATASTORE_PATH"
CONFIG_PATH_VARIABLE = "VELOCIRAPTOR_CONFIG_PATH"
ADMIN_PASSWORD_VARIABLE = "VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD"
NO_INITIALIZE_VARIABLE = "VELOCIRAPTOR_NO_INITIALIZE"
LITERAL_CONFIG_VARIABLE = "VELOCIRAPTOR_LITERAL_CONFIG"
IMAGE_VARIABLES = frozenset(
    {
        HOSTNAME_VARIABLE,
        FRONTEND_PORT_VARIABLE,
        GUI_PORT_VARIABLE,
        DATASTORE_VARIABLE,
        CONFIG_PATH_VARIABLE,
        ADMIN_PASSWORD_VARIABLE,
        NO_INITIALIZE_VARIABLE,
        LITERAL_CONFIG_VARIABLE,
    }
)
IMAGE_DEFAULT_PASSWORD = "password"

CONFIG_DIR = "/etc/velociraptor/"
CONFIG_FILE = f"{CONFIG_DIR}server.config.yaml"
DATASTORE_DIR = "/datastore/"
ARTIFACTS_DIR = "/custom_artifacts/"
"""The only directory the image's generated config lists in artifact_definitions_directories."""
INITIALIZE_ARTIFACT = "Container.InitializeServer"
BINARY = "/bin/velociraptor"
INIT_VQL = "/bin/init.vql"
"""The image's query that writes the first server config from the variables above."""
IMAGE_COMMAND = ("/bin/sh", "/bin/entrypoint")
"""The image's CMD (Docker/Dockerfile; it sets no ENTRYPOINT). With no config yet the script runs
init.vql and `user add admin <password>`; with one, it only starts the frontend. The start script
(start_script) writes the config first, so the image's script always takes the second path."""
GUI_APP_PATH = "app/index.html"
FRONTEND_BIND_PORT = 8000
GUI_BIND_PORT = 8889
"""The ports the generated config binds inside the container: the image's variables for the
frontend and GUI ports only go into the URLs (`Client.server_urls`, `GUI.public_url`), so they
name the host ports the frontend and the GUI are reached on, never the bound ones."""
METRICS_URL = "http://127.0.0.1:8003/metrics"
"""Velociraptor's monitoring endpoint, bound to loopback by the generated config."""
SERVER_CERTIFICATE_NAME = "VelociraptorServer"
SERVER_CERTIFICATE_DAYS = 365
"""Lifetime Velociraptor gives the server certificate it generates (its CA lasts 10 years)."""
RECORD_ISSUE_DATE = (
    "set hospital:edr.certificateIssued to the notBefore date it prints, as YYYY-MM-DD "
    "(notAfter, the expiry, is shown for information)"
)
"""What the operator does with the output of the certificate `check` command."""

ARTIFACTS_SOURCE = Path(__file__).resolve().parent.parent / "edr" / "artifacts"
SECRET_PARAMETER_TYPE = "redacted"
"""An artifact with a parameter of this type has a secret written into its defaults: its file is
uploaded as a secret."""
# Limitation: Orthanc's change log records stored instances only; C-FIND, C-MOVE, C-GET and C-ECHO
# leave no trace in its REST API, and Orthanc writes DICOM requests only to its verbose log, on
# stdout in this stack. So the artifact sees no query or retrieval by a peer; Orthanc's own checks
# (each modality's permissions, the called AET and, in prod, the peer's address) restrict them.
DICOM_TRAFFIC_ARTIFACT = "Hospital.Server.DicomTraffic"
PACS_SERVICE = "pacs"
# Limitation: without Orthanc's authorization plugin every Orthanc user has the whole REST API, so
# the password written into Hospital.Server.DicomTraffic's defaults could also delete studies. Its
# file is a secret upload and the parameter is redacted in requests, but any Velociraptor user who
# may read artifact definitions can read the default.
PACS_MONITOR_ACCOUNT = EDR_MONITOR_ACCOUNT
"""The PACS account Hospital.Server.DicomTraffic signs in with: an Orthanc user of its own (not
the administrator, nor the health probe), so its use is rotated and audited apart."""
DOCKER_VOLUMES_ROOT = "/var/lib/docker/volumes"
PHI_AUDIT_KEY_PREFIX = "phi-"
AUDIT_KEY_MAX_BYTES = 31
"""auditctl's limit on the key (`-k`) of one rule."""
ADMIN_SET_MARK = f'"Admin":"{ADMIN_USER}"'
ADMIN_PASSWORD_VQL = (
    f'LET password <= environ(var="{ADMIN_PASSWORD_VARIABLE}")\n'
    f'LET created <= user_create(user="{ADMIN_USER}", roles=["administrator"], '
    "password=password)\n"
    f'SELECT passwd(user="{ADMIN_USER}", password=password) AS Admin FROM scope()'
)
"""Creates `admin` if it is missing and sets the stack's password on it. The password is read
from the environment inside the query, so it is on no command line; `user_create` alone keeps an
existing password, hence `passwd`. The query prints ADMIN_SET_MARK when the password was set."""
TMPFS = {"/tmp": "rw,noexec,nosuid,nodev,size=256m"}


class EdrSettings(StackModel):
    """Velociraptor: image (0.77.3 or later), memory, ports, probes and the server certificate."""

    image: PinnedImage = IMAGE
    memory_mb: MemoryMb = 1024
    cpu_shares: CpuShares = 512
    frontend_port: Port = Field(
        default=8000, description="host port on addresses.agents (the server binds 8000)"
    )
    gui_port: Port = Field(
        default=8889,
        description="gateway port on addresses.management for the GUI (the server binds 8889)",
    )
    probe_period_seconds: Annotated[int, Field(ge=30, le=3600)] = Field(
        default=300, description="seconds between two health probes of the web interfaces"
    )
    certificate_issued: datetime.date | None = Field(
        default=None,
        description="the day the server generated or last reissued its certificate",
    )
    certificate_validity_days: Annotated[int, Field(ge=30, le=3650)] = Field(
        default=SERVER_CERTIFICATE_DAYS,
        description="lifetime of that certificate (365 unless reissued with `--validity`)",
    )
    build_client_packages: bool = Field(
        default=True,
        description="run the image's Container.InitializeServer at first start, which "
        "downloads Velociraptor releases and builds MSI, DEB and RPM agent packages",
    )

    @field_validator("image")
    @classmethod
    def _not_vulnerable(cls, image: str) -> str:
        version = re.search(r":v?(\d+)\.(\d+)\.(\d+)", image)
        if version and tuple(int(part) for part in version.groups()) < MINIMUM_VERSION:
            raise ValueError("must be Velociraptor 0.77.3 or later (earlier releases have CVEs)")
        return image

    @field_validator("certificate_issued")
    @classmethod
    def _issued_in_past(cls, issued: datetime.date | None) -> datetime.date | None:
        if issued is not None and issued > datetime.date.today():
            raise ValueError("must not lie in the future")
        return issued


class Edr(pulumi.ComponentResource):
    """The Velociraptor server in the security zone, with the hospital artifacts.

    :param name: the component's resource name.
    :param platform: the shared foundation.
    :param watched_sites: web interfaces the server probes through the gateway on a schedule
        (`Hospital.Server.ServiceHealth`), e.g. `[emr.site, pacs.site]`; the PACS site's REST API
        is also polled for the instances it stores (`Hospital.Server.DicomTraffic`).
    :param opts: resource options; pass the data center as parent.
    """

    def __init__(
        self,
        name: str,
        platform: Platform,
        watched_sites: Sequence[WebSite] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # Imported here: the platform imports the settings, which import this module's model.
        from components.platform import Healthcheck, Mount, Publish, Upload, WebSite

        super().__init__("hospital:components:Edr", name, None, opts)
        settings = platform.settings
        edr = settings.edr
        self.container_name = platform.container_name(SERVICE)
        self.watched_sites = tuple(watched_sites)

        # Limitation: the server's private keys (CA, frontend, GUI gateway) live in the config
        # volume in plain text, as Velociraptor requires to start unattended; the volume is
        # class "config" so that the backup covers it, encrypted.
        self.config_volume = platform.volumes.create(SERVICE, "config", "config", self)
        # Collected forensic data (uploaded files, log lines, query results) can hold PHI.
        self.datastore_volume = platform.volumes.create(SERVICE, "datastore", "phi", self)

        # The server's own datastore is left to Velociraptor's own audit log.
        phi_volumes = [
            volume.name for volume in platform.volumes.of_class("phi") if volume.service != SERVICE
        ]
        log_volumes = {volume.service: volume.name for volume in platform.volumes.of_class("logs")}
        self.artifact_types = artifact_types()
        self.artifact_names = sorted(self.artifact_types)
        self.secret_artifacts = artifacts_with_secrets()

        def render(ca_pem: str, pacs_password: str = "") -> dict[str, str]:
            return render_artifacts(
                artifact_defaults(
                    watched_sites=watched_sites,
                    probe_period_seconds=edr.probe_period_seconds,
                    root_ca_pem=ca_pem,
                    allowed_aets=[modality.aet for modality in settings.pacs.modalities.values()],
                    log_volumes=log_volumes,
                    phi_volumes=phi_volumes,
                    pacs_password=pacs_password,
                )
            )

        # The artifacts without a secret are rendered without the password, so their files stay
        # plain; those with one come from a rendering that has it and are uploaded as secrets.
        ca_pem = platform.pki.ca_cert_pem
        rendered = pulumi.Output.from_input(ca_pem).apply(render)
        rendered_with_secrets = pulumi.Output.all(
            ca_pem, platform.credentials.password(PACS_MONITOR_ACCOUNT)
        ).apply(lambda values: render(*values))

        self.site = WebSite(
            service=SERVICE,
            host_name=settings.host_name(SERVICE),
            upstream_host=ALIAS,
            upstream_port=GUI_BIND_PORT,
            zone="security",
            listen_address=str(settings.addresses.management),
            listen_port=edr.gui_port,
            upstream_tls=True,
        )
        self.gui_url = f"https://{self.site.host_name}:{edr.gui_port}/"
        self.frontend_url = f"https://{settings.addresses.agents}:{edr.frontend_port}/"

        self.container = platform.container(
            SERVICE,
            image=edr.image,
            zones=["security"],
            aliases=[ALIAS],
            envs=server_environment(
                hostname=str(settings.addresses.agents),
                frontend_port=edr.frontend_port,
                gui_port=edr.gui_port,
                build_client_packages=edr.build_client_packages,
            ),
            # Limitation: the image has no *_FILE variant for the admin password, so it is an
            # environment variable and shows in `docker inspect`. The start script reads it inside
            # a query (on no command line) at every start, so a rotation, which replaces the
            # container, reaches the account; a password changed in the GUI is reset at the next
            # start.
            secret_envs={ADMIN_PASSWORD_VARIABLE: platform.credentials.password(ADMIN_ACCOUNT)},
            # The image's variables name the agents' address, which init.vql also writes into
            # GUI.public_url; the start script points it at the gateway before the server starts.
            command=["/bin/sh", "-c", start_script(f"{self.gui_url}{GUI_APP_PATH}"), SERVICE],
            mounts=[
                Mount(self.config_volume, CONFIG_DIR),
                Mount(self.datastore_volume, DATASTORE_DIR),
            ],
            # Each artifact is uploaded as its own file into the image's artifact directory,
            # next to the image's Container.InitializeServer; no mount covers that directory.
            uploads=[
                Upload(
                    f"{ARTIFACTS_DIR}{artifact}.yaml",
                    rendered_with_secrets[artifact],
                    secret=True,
                )
                if artifact in self.secret_artifacts
                else Upload(f"{ARTIFACTS_DIR}{artifact}.yaml", rendered[artifact])
                for artifact in self.artifact_names
            ],
            publish=[
                Publish(
                    address=str(settings.addresses.agents),
                    host_port=edr.frontend_port,
                    container_port=FRONTEND_BIND_PORT,
                    purpose="EDR frontend for enrolled agents",
                )
            ],
            healthcheck=Healthcheck(
                test=["CMD", "wget", "-q", "-O", "/dev/null", METRICS_URL],
                start_period="120s",
            ),
            memory_mb=edr.memory_mb,
            cpu_shares=edr.cpu_shares,
            # Limitation: the root file system stays writable. No Velociraptor image can be run
            # here to learn what its start writes outside /etc/velociraptor, /datastore and /tmp;
            # a read-only root (its artifacts from a file carrier) waits on that check.
            read_only=False,
            # Limitation: runs as root (with every capability dropped): the image has no service
            # account, and the config and datastore volumes start out owned by root, so an
            # unprivileged user could not write the first config; stepping down inside would
            # need CHOWN and SETUID added back instead.
            tmpfs=TMPFS,
            parent=self,
        )

        today = datetime.date.today()
        self.certificate = server_certificate(
            edr, settings.pki.early_renewal_days, str(settings.addresses.agents)
        )
        for warning in certificate_warnings(self.certificate, today, settings.is_prod):
            pulumi.log.warn(f"edr: {warning}", self)

        self.exports: dict[str, Any] = {
            "guiUrl": self.gui_url,
            "guiAddress": str(settings.addresses.management),
            "agentFrontendUrl": self.frontend_url,
            "adminUser": ADMIN_USER,
            "adminPasswordAccount": ADMIN_ACCOUNT,
            "artifacts": self.artifact_names,
            "serverEvents": events_of_type(self.artifact_types, "SERVER_EVENT"),
            "clientEvents": events_of_type(self.artifact_types, "CLIENT_EVENT"),
            "serverCertificate": self.certificate,
            "monitoringSetup": monitoring_setup(self.artifact_types),
            "artifactAccounts": {DICOM_TRAFFIC_ARTIFACT: PACS_MONITOR_ACCOUNT},
            "enrolment": enrolment(self.container_name, self.frontend_url),
            "auditRules": audit_rules(phi_volumes),
            "volumes": {
                "config": self.config_volume.name,
                "datastore": self.datastore_volume.name,
            },
        }
        self.register_outputs({"guiUrl": self.gui_url, "agentFrontendUrl": self.frontend_url})


def server_environment(
    *, hostname: str, frontend_port: int, gui_port: int, build_client_packages: bool = True
) -> dict[str, str]:
    """The image's variables except the password: what the first config is generated from.

    `VELOCIRAPTOR_LITERAL_CONFIG` stays unset: it would carry the server's private keys in the
    environment. The image treats any value of `VELOCIRAPTOR_NO_INITIALIZE` as "skip".
    """
    environment = {
        HOSTNAME_VARIABLE: hostname,
        FRONTEND_PORT_VARIABLE: str(frontend_port),
        GUI_PORT_VARIABLE: str(gui_port),
        DATASTORE_VARIABLE: DATASTORE_DIR,
        CONFIG_PATH_VARIABLE: CONFIG_FILE,
    }
    if not build_client_packages:
        environment[NO_INITIALIZE_VARIABLE] = "TRUE"
    return environment


def start_script(
    public_url: str,
    *,
    config_file: str = CONFIG_FILE,
    binary: str = BINARY,
    init_vql: str = INIT_VQL,
    image_command: Sequence[str] = IMAGE_COMMAND,
) -> str:
    """The container's start (`sh -c`), run before the image's own script at every start.

    With no config yet it runs the image's own first step (init.vql writes the config). Then it
    sets `GUI.public_url` to `public_url` when the config says otherwise, creates `admin` if
    needed and gives it the stack's password (ADMIN_PASSWORD_VQL), and execs the image's command,
    which finds the config and starts the frontend. The image's own `user add admin <password>`
    is therefore never run, and the password is on no command line even at the first start.
    A password that cannot be set stops the start, so a rotation never fails unseen; a public URL
    that cannot be set is only logged.
    """
    config = shlex.quote(config_file)
    velociraptor = shlex.quote(binary)
    merge = json.dumps({"GUI": {"public_url": public_url}}, separators=(",", ":"))
    show = f"{velociraptor} --config {config} config show --merge {shlex.quote(merge)}"
    set_admin = f"{velociraptor} --config {config} query --format jsonl"
    return "\n".join(
        [
            "set -eu",
            f"if [ ! -f {config} ]; then",
            f"  {velociraptor} query -f {shlex.quote(init_vql)}",
            "fi",
            f"if ! grep -qF {shlex.quote(f'public_url: {public_url}')} {config}; then",
            f"  if (umask 077 && {show} > {config}.new); then",
            f"    mv {config}.new {config}",
            "  else",
            f"    rm -f {config}.new",
            "    echo 'edr: GUI.public_url could not be set; it keeps its old address' >&2",
            "  fi",
            "fi",
            f"if ! {set_admin} {shlex.quote(ADMIN_PASSWORD_VQL)} \\",
            f"    | grep -qF {shlex.quote(ADMIN_SET_MARK)}; then",
            f"  echo 'edr: the stack password could not be set on {ADMIN_USER}; not starting' >&2",
            "  exit 1",
            "fi",
            "exec " + " ".join(shlex.quote(part) for part in image_command),
        ]
    )


def server_certificate(
    edr: EdrSettings, early_renewal_days: int, agents_address: str
) -> dict[str, Any]:
    """When the server certificate expires, from the issue date recorded in the stack.

    The server generates its certificate at its first start, inside the container, so no
    deploy-time value can know it: the operator runs the `check` command once and records its
    notBefore date (the issue date) as `edr.certificateIssued`; the artifact
    Hospital.Server.CertificateExpiry watches the real certificate from inside the server.
    """
    described: dict[str, Any] = {
        "name": SERVER_CERTIFICATE_NAME,
        "issuer": "the server's internal Velociraptor CA (10 years)",
        "validityDays": edr.certificate_validity_days,
        "issued": None,
        "notAfter": None,
        "renewFrom": None,
        "status": "unrecorded",
        "check": check_command(agents_address, edr.frontend_port),
        "record": RECORD_ISSUE_DATE,
        "watchedBy": "Hospital.Server.CertificateExpiry",
    }
    if edr.certificate_issued is None:
        return described
    not_after = edr.certificate_issued + datetime.timedelta(days=edr.certificate_validity_days)
    renew_from = not_after - datetime.timedelta(days=early_renewal_days)
    return {
        **described,
        "issued": edr.certificate_issued.isoformat(),
        "notAfter": not_after.isoformat(),
        "renewFrom": renew_from.isoformat(),
        "status": "recorded",
    }


def certificate_warnings(
    certificate: Mapping[str, Any], today: datetime.date, is_prod: bool
) -> list[str]:
    """What an operator must hear at `pulumi up` about the server certificate."""
    if certificate["notAfter"] is None:
        if not is_prod:
            return []
        return [
            "the server certificate's issue date is not recorded; after the first start run "
            f"`{certificate['check']}` and {RECORD_ISSUE_DATE}"
        ]
    if today >= datetime.date.fromisoformat(certificate["notAfter"]):
        return [
            f"the server certificate expired on {certificate['notAfter']}: agents cannot "
            "connect until it is reissued (`config reissue_certs`)"
        ]
    if today >= datetime.date.fromisoformat(certificate["renewFrom"]):
        return [
            f"the server certificate expires on {certificate['notAfter']}: reissue it now "
            "(`config reissue_certs`) and record the new date"
        ]
    return []


def check_command(agents_address: str, frontend_port: int) -> str:
    """A shell command, run on the Docker host, that prints the server certificate's issue date
    (notBefore, what the stack records) and expiry (notAfter) from the frontend where the agents
    reach it (the only address it is published on). Velociraptor dates a certificate it issues
    from the moment it issues it, so notBefore is the issue date."""
    return (
        f"curl -sk https://{agents_address}:{frontend_port}/server.pem "
        "| openssl x509 -noout -startdate -enddate"
    )


# Limitation: agents are installed on the hosts, not run as a container of the stack. A container
# agent needs the client config, which the server writes only at its first start, so one
# `pulumi up` cannot create both; and what it could read without the Docker socket or host
# namespaces (the log volumes) is a subset of what the host agent sees (auth log, auditd).
def enrolment(container_name: str, frontend_url: str) -> dict[str, Any]:
    """What an agent needs and how an operator obtains it after the server's first start."""
    client_config = (
        f"docker exec {container_name} {BINARY} --config {CONFIG_FILE} config client "
        "> client.config.yaml"
    )
    binary = f"docker cp {container_name}:{BINARY} ./velociraptor && chmod 0755 ./velociraptor"
    package = "./velociraptor --config client.config.yaml debian client"
    return {
        "serverUrl": frontend_url,
        "clientConfigCommand": client_config,
        "binaryCommand": binary,
        "debianPackageCommand": package,
        "hostInstall": [
            client_config,
            binary,
            "./velociraptor version",
            package,
            "sudo dpkg -i velociraptor_client_*.deb",
            "sudo systemctl enable --now velociraptor_client",
        ],
        "note": (
            "The client config exists only after the server's first start, and it carries the "
            "deployment's CA and nonce: keep it out of version control. The velociraptor binary "
            "is copied out of the server container, so the agent runs the server's own release "
            "(`version` shows it) for the Docker host's architecture; enrol hosts of another "
            "architecture with the same release built for theirs."
        ),
    }


def monitoring_setup(artifact_types: Mapping[str, str]) -> list[str]:
    """The steps that turn the uploaded artifacts on; the server's monitoring tables live in its
    datastore, which the image fills at first start, so they are set in the GUI once. Each table
    takes only event artifacts of its own type.
    """
    server = events_of_type(artifact_types, "SERVER_EVENT")
    client = events_of_type(artifact_types, "CLIENT_EVENT")
    return [
        "GUI > Server Events > Update server monitoring table, keeping the parameter defaults "
        "(the deployment writes the stack's URLs, CA and credentials into them): add "
        + ", ".join(server),
        "GUI > Client Events > Update client monitoring table (label of the Docker host): add "
        + ", ".join(client),
        f"On the Docker host: load the auditRules (one key per volume, {PHI_AUDIT_KEY_PREFIX}"
        "...) into /etc/audit/rules.d/ and run `augenrules --load`",
    ]


def events_of_type(artifact_types: Mapping[str, str], artifact_type: str) -> list[str]:
    """The names of the artifacts of one type, sorted."""
    return sorted(name for name, kind in artifact_types.items() if kind == artifact_type)


def phi_audit_keys(phi_volumes: Sequence[str]) -> dict[str, str]:
    """The audit rule key of each patient-data volume, by volume: `phi-` and the volume's name
    without the project prefix, or a digest of the name where that exceeds auditctl's limit."""
    keys = {}
    for volume in sorted(phi_volumes):
        key = PHI_AUDIT_KEY_PREFIX + volume.removeprefix("hospital-")
        if len(key.encode()) > AUDIT_KEY_MAX_BYTES:
            key = PHI_AUDIT_KEY_PREFIX + hashlib.sha256(volume.encode()).hexdigest()[:16]
        keys[volume] = key
    return keys


def audit_rules(phi_volumes: Sequence[str]) -> list[str]:
    """auditd watch rules for the host, one per patient-data volume, each with its own key."""
    return [
        f"-w {DOCKER_VOLUMES_ROOT}/{volume}/_data -p rwa -k {key}"
        for volume, key in phi_audit_keys(phi_volumes).items()
    ]


@dataclass(frozen=True)
class ProbeTarget:
    """One row of Hospital.Server.ServiceHealth's Targets: a service and its public URL."""

    service: str
    url: str


# Limitation: the server resolves the public names through Docker's DNS, which asks the host's
# resolvers, and reaches the gateway on the host's edge address; with loopback addresses (dev)
# the probes and the PACS polls cannot leave the container: every service is reported down and no
# DICOM traffic is seen.
def probe_targets(sites: Sequence[WebSite]) -> list[ProbeTarget]:
    """The public HTTPS URL of each site, as staff reach it through the gateway."""
    return [
        ProbeTarget(site.service, f"https://{site.host_name}:{site.listen_port}/") for site in sites
    ]


def artifact_files() -> list[Path]:
    """The committed artifact definitions, one YAML file per artifact, named after it."""
    return sorted(ARTIFACTS_SOURCE.glob("*.yaml"))


def artifact_types() -> dict[str, str]:
    """The type of each committed artifact (CLIENT, CLIENT_EVENT, SERVER, SERVER_EVENT), by name."""
    return {path.stem: yaml.safe_load(path.read_text())["type"] for path in artifact_files()}


def artifacts_with_secrets() -> frozenset[str]:
    """The committed artifacts that declare a parameter of the secret type, by name."""
    return frozenset(
        path.stem
        for path in artifact_files()
        if any(
            parameter.get("type") == SECRET_PARAMETER_TYPE
            for parameter in yaml.safe_load(path.read_text()).get("parameters", [])
        )
    )


def artifact_defaults(
    *,
    watched_sites: Sequence[WebSite],
    probe_period_seconds: int,
    root_ca_pem: str,
    allowed_aets: Sequence[str],
    log_volumes: Mapping[str, str],
    phi_volumes: Sequence[str] = (),
    pacs_user: str = USER_NAMES[PACS_MONITOR_ACCOUNT],
    pacs_password: str = "",
) -> dict[str, dict[str, str]]:
    """Parameter defaults that depend on the stack, by artifact and parameter name.

    The PACS is polled at the URL of the watched site of the `pacs` service; `pacs_password` goes
    into Hospital.Server.DicomTraffic's defaults, so render it only into a secret upload.
    """
    probes = probe_targets(watched_sites)
    targets = "Service,Url\n" + "".join(f"{target.service},{target.url}\n" for target in probes)
    # With no modality configured nothing is allowed: every DICOM sender is flagged.
    aets = "|".join(re2_literal(aet) for aet in sorted(allowed_aets))
    allowed_callers = f"^({aets})$" if aets else "^$"
    log_globs = "Source,Glob\nhost,/var/log/auth.log\nhost,/var/log/secure\n" + "".join(
        f"{service},{DOCKER_VOLUMES_ROOT}/{volume}/_data/**/*.log\n"
        for service, volume in sorted(log_volumes.items())
    )
    defaults = {
        "Hospital.Server.ServiceHealth": {
            "Targets": targets,
            "PeriodSeconds": str(probe_period_seconds),
            "RootCA": root_ca_pem,
        },
        "Hospital.Server.CertificateExpiry": {
            "ServerPemUrl": f"https://127.0.0.1:{FRONTEND_BIND_PORT}/server.pem",
        },
        DICOM_TRAFFIC_ARTIFACT: {
            "RootCA": root_ca_pem,
            "User": pacs_user,
            "Password": pacs_password,
            "AllowedCallingAets": allowed_callers,
        },
        "Hospital.Client.FailedLogins": {"LogGlobs": log_globs},
        "Hospital.Client.PhiFileAccess": {
            "AuditKeys": "Key,Volume\n"
            + "".join(f"{key},{volume}\n" for volume, key in phi_audit_keys(phi_volumes).items())
        },
    }
    pacs_urls = [target.url for target in probes if target.service == PACS_SERVICE]
    if pacs_urls:
        defaults[DICOM_TRAFFIC_ARTIFACT]["PacsUrl"] = pacs_urls[0]
    return defaults


def re2_literal(text: str) -> str:
    """`text` as a literal in Go's RE2 syntax, which rejects escapes of non-punctuation."""
    return re.sub(r"([\\.^$*+?()\[\]{}|-])", r"\\\1", text)


def render_artifacts(defaults: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Every artifact file as YAML, with the stack's parameter defaults written in."""
    rendered = {}
    for path in artifact_files():
        definition = yaml.safe_load(path.read_text())
        overrides = defaults.get(definition["name"], {})
        unknown = set(overrides) - {p["name"] for p in definition.get("parameters", [])}
        if unknown:
            raise ValueError(f"{definition['name']} has no parameter(s) {sorted(unknown)}")
        for parameter in definition.get("parameters", []):
            if parameter["name"] in overrides:
                parameter["default"] = overrides[parameter["name"]]
        rendered[definition["name"]] = yaml.dump(
            definition, Dumper=_ArtifactDumper, sort_keys=False, width=100
        )
    return rendered


class _ArtifactDumper(yaml.SafeDumper):
    """Writes multi-line strings (descriptions, queries, CSV defaults) as literal blocks."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ArtifactDumper.add_representer(str, _represent_text)

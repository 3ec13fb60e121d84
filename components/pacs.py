"""Orthanc PACS: the image contract, its settings, the component, and the pure functions that
render its JSON configuration files.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pulumi
from pydantic import Field, ValidationInfo, field_validator

from components.config_model import CpuShares, MemoryMb, PinnedImage, Port, StackModel

if TYPE_CHECKING:
    from components.platform import Platform

# The orthancteam image (Orthanc 1.12.x with its official plugins); the tag is the one the Orthanc
# book's own database benchmark names.
IMAGE = "orthancteam/orthanc:25.10.3"
HTTP_PORT = 8042
ALIAS = "orthanc"

# Orthanc listens on 4242 inside the container whatever host port modalities dial: an
# unprivileged port needs no capability even when `dicomPort` is 104.
DICOM_CONTAINER_PORT = 4242

# The image's entrypoint merges every /etc/orthanc/*.json into /tmp/orthanc.json, moves the
# plugins that the merged configuration enables into /usr/share/orthanc/plugins/ and starts
# Orthanc; its health probe reads port, scheme and credentials from that merged file.
CONFIG_DIR = "/etc/orthanc"
TLS_DIR = "/etc/orthanc/tls"
PROBE = "/probes/test-aliveness.py"
PLUGIN_DIR = "/usr/share/orthanc/plugins/"

# The image's `orthanc` user (uid/gid 999) owns /var/lib/orthanc, /tmp, /etc/hostid and the
# plugin folders. Mounting the volume at /var/lib/orthanc (not at .../db, which the image does
# not have) lets Docker copy that ownership into the fresh volume.
RUN_AS = "999:999"
DATA_MOUNT = "/var/lib/orthanc"
STORAGE_DIRECTORY = "/var/lib/orthanc/db"

DICOMWEB_ROOT = "/dicom-web/"

# Accounts of Orthanc's HTTP basic authentication: (credential account, Orthanc user name).
ADMIN_ACCOUNT = "pacs-admin"
VIEWER_ACCOUNT = "pacs-emr-viewer"
PROBE_ACCOUNT = "pacs-probe"
EDR_MONITOR_ACCOUNT = "pacs-edr-monitor"
USER_NAMES = {
    ADMIN_ACCOUNT: "admin",
    VIEWER_ACCOUNT: "openemr",
    PROBE_ACCOUNT: "health-probe",
    EDR_MONITOR_ACCOUNT: "edr-monitor",
}
# Limitation: without Orthanc's authorization plugin (which needs an external authorization
# service) every registered user has the full REST API, deletion included; the viewer, probe and
# EDR monitor accounts are separate only so that each can be rotated and audited on its own.

# Performance settings, each with the reason it is set (all kept in prod and dev alike).
# DCMTK, Orthanc's DICOM toolkit, reads TCP_NODELAY from the environment; without it every
# C-STORE response waits on Nagle's algorithm and delayed ACKs (about 11 instances/s measured
# on one association, about 170/s with TCP_NODELAY on both ends).
TOOLKIT_ENVIRONMENT = {"TCP_NODELAY": "1"}
# Every idle keep-alive connection that the gateway holds open pins one HTTP thread; 50 leaves
# room for the gateway's pool (2 workers x 16) plus bursts from viewers.
HTTP_THREADS = 50
# Orthanc's default of 1 s closes idle connections long before the gateway reuses them; the
# gateway's upstream keepalive_timeout (60 s) stays below this so nginx always closes first.
HTTP_KEEPALIVE_TIMEOUT_S = 75
# Jobs (C-MOVE, archives, transcoding) run one per core on the 2-core hosts this targets.
CONCURRENT_JOBS = 2

# DICOM PS3.5: an AE title is 1-16 characters of the default repertoire, no backslash or controls.
AeTitle = Annotated[str, Field(pattern=r"^[ -\[\]-~]{1,16}$")]
DicomService = Literal["echo", "find", "get", "move", "store"]
OrthancValue = Any

# Every key the renderers may write, with where it is documented. A key outside this table is
# a bug: Orthanc ignores unknown keys silently, so a typo would switch a safeguard off unseen.
# "Configuration.json" is OrthancServer/Resources/Configuration.json, the annotated reference
# configuration shipped with Orthanc; "book" is the Orthanc book (orthanc.uclouvain.be/book).
ORTHANC_KEYS: Mapping[str, str] = {
    "Name": "Configuration.json",
    "StorageDirectory": "Configuration.json",
    "IndexDirectory": "Configuration.json",
    "StorageCompression": "Configuration.json",
    "SyncStorageArea": "Configuration.json (1.7.4)",
    "Plugins": "Configuration.json",
    "ConcurrentJobs": "Configuration.json",
    "HttpPort": "Configuration.json",
    "HttpThreadsCount": "Configuration.json",
    "HttpCompressionEnabled": "Configuration.json",
    "KeepAlive": "Configuration.json",
    "KeepAliveTimeout": "Configuration.json (1.11.3)",
    "TcpNoDelay": "Configuration.json",
    "RemoteAccessAllowed": "Configuration.json",
    "SslEnabled": "Configuration.json",
    "AuthenticationEnabled": "Configuration.json",
    "RegisteredUsers": "Configuration.json",
    "ExecuteLuaEnabled": "Configuration.json (1.5.8)",
    "DeidentifyLogs": "Configuration.json (1.8.2)",
    "DicomServerEnabled": "Configuration.json",
    "DicomAet": "Configuration.json",
    "DicomPort": "Configuration.json",
    "DicomCheckCalledAet": "Configuration.json",
    "DicomCheckModalityHost": "Configuration.json",
    "DicomAlwaysAllowEcho": "Configuration.json",
    "DicomAlwaysAllowStore": "Configuration.json",
    "DicomModalitiesInDatabase": "Configuration.json (1.5.0)",
    "DicomModalities": "Configuration.json",
    "DicomModalities.*.AET": "Configuration.json, DicomModalities",
    "DicomModalities.*.Host": "Configuration.json, DicomModalities",
    "DicomModalities.*.Port": "Configuration.json, DicomModalities",
    "DicomModalities.*.AllowEcho": "Configuration.json, DicomModalities (1.5.0)",
    "DicomModalities.*.AllowFind": "Configuration.json, DicomModalities (1.5.0)",
    "DicomModalities.*.AllowGet": "Configuration.json, DicomModalities (1.5.0)",
    "DicomModalities.*.AllowMove": "Configuration.json, DicomModalities (1.5.0)",
    "DicomModalities.*.AllowStore": "Configuration.json, DicomModalities (1.5.0)",
    "DicomModalities.*.UseDicomTls": "book, Configuring DICOM TLS (1.9.0)",
    "DicomTlsEnabled": "book, Configuring DICOM TLS (1.9.0)",
    "DicomTlsCertificate": "book, Configuring DICOM TLS (1.9.0)",
    "DicomTlsPrivateKey": "book, Configuring DICOM TLS (1.9.0)",
    "DicomTlsTrustedCertificates": "book, Configuring DICOM TLS (1.9.0)",
    "DicomTlsRemoteCertificateRequired": "book, Configuring DICOM TLS (1.9.3)",
    "DicomWeb": "book, DICOMweb plugin",
    "DicomWeb.Enable": "book, DICOMweb plugin",
    "DicomWeb.Root": "book, DICOMweb plugin",
    "DicomWeb.PublicRoot": "book, DICOMweb plugin",
    "DicomWeb.EnableWado": "book, DICOMweb plugin",
}


DNS_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"(?=.{{1,253}}$){DNS_LABEL}(\.{DNS_LABEL})*\.?")


class ModalitySettings(StackModel):
    """One DICOM peer: its AE title, where it listens and what it may ask of the PACS."""

    aet: AeTitle
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Port = 104
    allow: frozenset[DicomService] = Field(
        default=frozenset({"echo", "store"}),
        description="DICOM services this peer may request; anything else is refused",
    )
    tls: bool = Field(default=False, description="DICOM TLS with this peer (needs dicomTls)")

    @field_validator("host")
    @classmethod
    def _host_is_a_peer(cls, host: str) -> str:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if not HOST_NAME.fullmatch(host):
                raise ValueError("must be the modality's IP address or DNS host name") from None
            return host
        if address.is_unspecified:
            raise ValueError("must be the modality's own address, not 0.0.0.0")
        return host


class PacsSettings(StackModel):
    """Orthanc: image, memory, its own AE title and port, and the modalities it trusts.

    `dicomTls` turns Orthanc's DICOM port into a DICOM TLS port with a certificate from the
    stack's PKI; every modality must then set `tls: true` (and present a certificate that the
    PKI's CA signed), because a TLS port no longer accepts plain associations.
    """

    image: PinnedImage = IMAGE
    memory_mb: MemoryMb = 2048
    cpu_shares: CpuShares = 1024
    aet: AeTitle = "ORTHANC"
    dicom_port: Port = Field(default=4242, description="host port on addresses.dicom")
    dicom_tls: bool = Field(
        default=False, description="DICOM TLS on the DICOM port, certificate from the PKI"
    )
    modalities: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")], ModalitySettings] = (
        Field(default_factory=dict)
    )

    @field_validator("modalities")
    @classmethod
    def _tls_is_all_or_nothing(
        cls, modalities: dict[str, ModalitySettings], info: ValidationInfo
    ) -> dict[str, ModalitySettings]:
        dicom_tls = info.data.get("dicom_tls", False)
        plain = sorted(name for name, modality in modalities.items() if not modality.tls)
        secure = sorted(name for name, modality in modalities.items() if modality.tls)
        if dicom_tls and plain:
            raise ValueError(
                f"{', '.join(plain)} set tls: false, but dicomTls makes the DICOM port accept "
                "TLS associations only; set their tls: true"
            )
        if not dicom_tls and secure:
            raise ValueError(
                f"{', '.join(secure)} set tls: true, which needs dicomTls: true and a "
                "certificate for Orthanc"
            )
        return modalities


class Pacs(pulumi.ComponentResource):
    """Orthanc on the clinical zone: storage on a PHI volume, configuration rendered to JSON
    files, generated users, the DICOM port published on the DICOM address only, and DICOMweb
    served to staff through the gateway at https://pacs.<domain>/dicom-web/.

    Exposes `container`, `site` (the WebSite the gateway publishes), `dicom_endpoint` (the
    `dicom` export) and `https_endpoint`.
    """

    def __init__(
        self,
        name: str,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # Imported here: the platform imports the settings, which import this module's models.
        from components.platform import Healthcheck, Mount, Publish, Upload, WebSite

        super().__init__("hospital:components:Pacs", name, None, opts)
        settings = platform.settings
        pacs = settings.pacs
        host_name = settings.host_name("pacs")
        dicom_address = str(settings.addresses.dicom)

        storage = platform.volumes.create("pacs", "storage", "phi", parent=self)

        passwords = {
            USER_NAMES[account]: platform.credentials.password(account) for account in USER_NAMES
        }
        credentials_json = pulumi.Output.all(**passwords).apply(
            lambda plain: to_json(render_credentials(plain))
        )
        uploads = [
            Upload(f"{CONFIG_DIR}/{file_name}", to_json(document))
            for file_name, document in render_orthanc_config(pacs, is_prod=settings.is_prod).items()
        ]
        uploads.append(Upload(f"{CONFIG_DIR}/{CREDENTIALS_FILE}", credentials_json, secret=True))

        self.dicom_certificate = None
        if pacs.dicom_tls:
            # Client use too: Orthanc presents the same certificate when it is the SCU (C-MOVE).
            # Modalities dial the DICOM address, so it is a name of the certificate as well.
            self.dicom_certificate = platform.pki.issue(
                "pacs-dicom",
                [host_name, ALIAS, platform.container_name("pacs")],
                server=True,
                client=True,
                ip_addresses=[dicom_address],
            )
            uploads += [
                Upload(DICOM_TLS_CERTIFICATE, self.dicom_certificate.cert_pem),
                Upload(DICOM_TLS_KEY, self.dicom_certificate.private_key_pem, secret=True),
                Upload(DICOM_TLS_TRUSTED, self.dicom_certificate.ca_cert_pem),
            ]

        self.container = platform.container(
            "pacs",
            image=pacs.image,
            zones=["clinical"],
            aliases=[ALIAS],
            # The image's own probe: GET /changes?last (touches the index database) as the
            # probe user, whose password it reads from the merged configuration by name.
            healthcheck=Healthcheck(
                test=["CMD", "python3", PROBE, f"--user={USER_NAMES[PROBE_ACCOUNT]}"],
                interval="15s",
                timeout="5s",
                retries=4,
                start_period="60s",
            ),
            memory_mb=pacs.memory_mb,
            cpu_shares=pacs.cpu_shares,
            parent=self,
            envs=dict(TOOLKIT_ENVIRONMENT),
            uploads=uploads,
            mounts=[Mount(storage, DATA_MOUNT)],
            publish=[
                Publish(dicom_address, pacs.dicom_port, DICOM_CONTAINER_PORT, "DICOM (modalities)")
            ],
            capabilities=[],
            user=RUN_AS,
            # Limitation: the root file system stays writable: the image's entrypoint writes
            # /etc/hostid and moves plugin libraries under /usr/share/orthanc at every start,
            # so neither a file carrier nor a tmpfs would let it start on a read-only root.
            read_only=False,
            # /tmp holds the merged configuration and Orthanc's temporary files (ZIP archives of
            # studies); a quarter of the memory limit bounds it.
            tmpfs={"/tmp": f"rw,noexec,nosuid,nodev,size={pacs.memory_mb // 4}m"},
        )

        self.site = WebSite(
            service="pacs",
            host_name=host_name,
            upstream_host=ALIAS,
            upstream_port=HTTP_PORT,
            zone="clinical",
            listen_address=str(settings.addresses.edge),
            listen_port=settings.gateway.https_port,
            streaming=True,
        )
        self.https_endpoint = https_url(host_name, settings.gateway.https_port)
        self.dicom_endpoint = dicom_endpoint(pacs, dicom_address)

        self.register_outputs(
            {"httpsEndpoint": self.https_endpoint, "dicomEndpoint": self.dicom_endpoint}
        )


# Files under CONFIG_DIR. Orthanc merges them and refuses to start when two define one key.
CREDENTIALS_FILE = "credentials.json"
DICOM_TLS_CERTIFICATE = f"{TLS_DIR}/orthanc.crt"
DICOM_TLS_KEY = f"{TLS_DIR}/orthanc.key"
DICOM_TLS_TRUSTED = f"{TLS_DIR}/trusted-ca.crt"

ALLOW_KEYS: Mapping[DicomService, str] = {
    "echo": "AllowEcho",
    "find": "AllowFind",
    "get": "AllowGet",
    "move": "AllowMove",
    "store": "AllowStore",
}


def render_orthanc_config(pacs: PacsSettings, *, is_prod: bool) -> dict[str, dict]:
    """Every Orthanc configuration file except the credentials, by file name.

    `orthanc.json` holds storage, HTTP server and performance settings, `dicom.json` the DICOM
    server and the modalities it trusts, `dicomweb.json` the DICOMweb plugin (its section alone
    enables the plugin in the orthancteam image) and, with DICOM TLS, `dicom-tls.json`.
    """
    files = {
        "orthanc.json": {
            "Name": pacs.aet,
            "StorageDirectory": STORAGE_DIRECTORY,
            "IndexDirectory": STORAGE_DIRECTORY,
            # Compression costs CPU on every C-STORE and every download; the backup compresses.
            "StorageCompression": False,
            # A C-STORE is acknowledged only once the instance is on disk: integrity first.
            "SyncStorageArea": True,
            "Plugins": [PLUGIN_DIR],
            "ConcurrentJobs": CONCURRENT_JOBS,
            "HttpPort": HTTP_PORT,
            "HttpThreadsCount": HTTP_THREADS,
            # DICOM payloads barely compress; gzip would only burn the cores the gateway needs.
            "HttpCompressionEnabled": False,
            "KeepAlive": True,
            "KeepAliveTimeout": HTTP_KEEPALIVE_TIMEOUT_S,
            "TcpNoDelay": True,
            # The gateway reaches Orthanc from another container; authentication guards it.
            "RemoteAccessAllowed": True,
            # TLS ends at the gateway; the hop to Orthanc stays on the clinical zone's bridge.
            "SslEnabled": False,
            "AuthenticationEnabled": True,
            # No Lua through the REST API: it would run code inside the PACS.
            "ExecuteLuaEnabled": False,
            # Keep patient data out of the logs (C-FIND/C-MOVE queries are de-identified).
            "DeidentifyLogs": True,
        },
        "dicom.json": {
            "DicomServerEnabled": True,
            "DicomAet": pacs.aet,
            "DicomPort": DICOM_CONTAINER_PORT,
            "DicomCheckCalledAet": True,
            # In dev the published loopback port reaches Orthanc through Docker's proxy, so every
            # peer appears to come from the bridge gateway: only prod can check peer addresses.
            "DicomCheckModalityHost": is_prod,
            "DicomAlwaysAllowEcho": not is_prod,
            "DicomAlwaysAllowStore": False,
            # Peers come from this file only; the REST API cannot add a trusted modality.
            "DicomModalitiesInDatabase": False,
            "DicomModalities": {
                name: render_modality(modality)
                for name, modality in sorted(pacs.modalities.items())
            },
        },
        "dicomweb.json": {
            "DicomWeb": {
                "Enable": True,
                "Root": DICOMWEB_ROOT,
                # Links in DICOMweb answers point at the gateway's path; the host and scheme
                # come from the Forwarded header the gateway sets.
                "PublicRoot": DICOMWEB_ROOT,
                "EnableWado": True,
            }
        },
    }
    if pacs.dicom_tls:
        files["dicom-tls.json"] = {
            "DicomTlsEnabled": True,
            "DicomTlsCertificate": DICOM_TLS_CERTIFICATE,
            "DicomTlsPrivateKey": DICOM_TLS_KEY,
            "DicomTlsTrustedCertificates": DICOM_TLS_TRUSTED,
            # Mutual TLS: a peer must show a certificate that the stack's CA signed.
            "DicomTlsRemoteCertificateRequired": True,
        }
    unlisted = sorted(
        {path for document in files.values() for path in key_paths(document)} - set(ORTHANC_KEYS)
    )
    if unlisted:
        raise ValueError(f"Orthanc keys missing from ORTHANC_KEYS: {unlisted}")
    return files


def render_modality(modality: ModalitySettings) -> dict[str, OrthancValue]:
    """One `DicomModalities` entry: address, AE title and every permission spelled out."""
    entry: dict[str, OrthancValue] = {
        "AET": modality.aet,
        "Host": modality.host,
        "Port": modality.port,
    }
    for service, key in ALLOW_KEYS.items():
        entry[key] = service in modality.allow
    entry["UseDicomTls"] = modality.tls
    return entry


def render_credentials(registered_users: Mapping[str, str]) -> dict[str, OrthancValue]:
    """`credentials.json`: Orthanc's users and passwords (uploaded as a secret file)."""
    return {"RegisteredUsers": dict(sorted(registered_users.items()))}


def to_json(document: Mapping[str, OrthancValue]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def key_paths(document: Mapping[str, OrthancValue]) -> Iterator[str]:
    """Dotted paths of every key, modality names replaced by `*` (the allow-list's form)."""
    for key, value in document.items():
        yield key
        if key == "DicomModalities":
            for entry in value.values():
                yield from (f"DicomModalities.*.{field}" for field in entry)
        elif key == "DicomWeb":
            yield from (f"DicomWeb.{field}" for field in value)


def duplicate_keys(documents: Mapping[str, Mapping[str, OrthancValue]]) -> dict[str, list[str]]:
    """Top-level keys defined by more than one file, with the files that define them."""
    owners: dict[str, list[str]] = {}
    for file_name, document in documents.items():
        for key in document:
            owners.setdefault(key, []).append(file_name)
    return {key: files for key, files in owners.items() if len(files) > 1}


def dicom_endpoint(pacs: PacsSettings, address: str) -> dict[str, OrthancValue]:
    """The `dicom` export: what a modality engineer types into the scanner, and the peers the
    PACS trusts with what each may ask of it."""
    return {
        "aet": pacs.aet,
        "host": address,
        "port": pacs.dicom_port,
        "endpoint": f"{pacs.aet}@{address}:{pacs.dicom_port}",
        "tls": pacs.dicom_tls,
        "modalities": {
            name: {
                "aet": modality.aet,
                "host": modality.host,
                "port": modality.port,
                "allow": sorted(modality.allow),
                "tls": modality.tls,
            }
            for name, modality in sorted(pacs.modalities.items())
        },
    }


def https_url(host_name: str, port: int) -> str:
    return f"https://{host_name}/" if port == 443 else f"https://{host_name}:{port}/"

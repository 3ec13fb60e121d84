"""The composition: the foundation, then every service on it, and the stack's exports."""

from __future__ import annotations

import ipaddress
from typing import Any

import pulumi

from components.backup import Backup, disabled_plan
from components.compliance import compliance_summary
from components.credentials import Credentials
from components.database import PORT as DATABASE_PORT
from components.database import Database
from components.edr import Edr, probe_targets
from components.emr import Emr
from components.gateway import Gateway
from components.network import TrustZones
from components.pacs import Pacs
from components.pki import Pki
from components.platform import Platform, Publish, WebSite
from components.settings import Settings
from components.volumes import VolumeCatalog

EXPORT_SCHEMA_VERSION = 1
HTTPS_PORT = 443


class HospitalDataCenter(pulumi.ComponentResource):
    """Trust zones, credentials, PKI and the clinical, security and backup services."""

    def __init__(
        self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hospital:components:HospitalDataCenter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack = pulumi.get_stack()
        self.settings = settings

        self.platform = Platform(
            settings=settings,
            stack=stack,
            zones=TrustZones("zones", settings, child),
            credentials=Credentials("credentials", settings, child),
            pki=Pki("pki", settings, child),
            volumes=VolumeCatalog(stack=stack, retain=settings.is_prod),
        )
        if settings.is_prod:
            pulumi.log.info("prod: volumes are retained on destroy; policies are mandatory", self)
        else:
            for audience, address in settings.addresses.model_dump().items():
                if address.is_unspecified:
                    pulumi.log.warn(
                        f"dev: hospital:addresses.{audience} is {address}, so its ports are "
                        "published on every interface of the host, not only on loopback",
                        self,
                    )

        self.endpoints: dict[str, pulumi.Input[Any]] = {}
        self.extra_exports: dict[str, pulumi.Input[Any]] = {}

        self.database = Database("database", self.platform, child)
        self.emr = Emr("emr", self.platform, self.database, child)
        self.endpoints["emr"] = self.emr.https_endpoint

        self.pacs = Pacs("pacs", self.platform, child)
        self.endpoints["pacs"] = self.pacs.https_endpoint
        self.extra_exports["dicom"] = self.pacs.dicom_endpoint

        self.edr = Edr("edr", self.platform, [self.emr.site, self.pacs.site], opts=child)
        self.endpoints["edr"] = self.edr.gui_url
        self.extra_exports["edr"] = self.edr.exports

        # Every service with a web interface that exists in this build.
        web_services = [getattr(self, name, None) for name in ("emr", "pacs", "edr")]
        web_services = [service for service in web_services if service is not None]
        self.gateway = Gateway(
            "gateway",
            self.platform,
            [service.site for service in web_services],
            upstreams=[service.container for service in web_services],
            opts=child,
        )

        # Last: the job covers every phi/config volume that exists when it is built.
        if settings.backup.enabled:
            self.backup = Backup("backup", self.platform, self.database, child)
            self.extra_exports["backup"] = self.backup.plan
        else:
            self.extra_exports["backup"] = disabled_plan()

        self.register_outputs({"endpoints": self.endpoints})

    def exports(self) -> dict[str, pulumi.Input[Any]]:
        """Every stack export, under a versioned schema that the docs generator reads."""
        platform, settings = self.platform, self.settings
        stack = pulumi.get_stack()
        return {
            "schemaVersion": EXPORT_SCHEMA_VERSION,
            "stack": stack,
            "environment": settings.environment,
            "domain": settings.domain,
            "endpoints": self.endpoints,
            "networks": platform.zones.describe(),
            "volumes": platform.volumes.describe(_backup_runs(platform)),
            "certificates": platform.pki.describe(),
            "services": _services(platform),
            "ports": platform.ports_table(),
            "credentialAccounts": platform.credentials.accounts,
            "credentials": platform.credentials.secrets(),
            "passwordPolicy": {
                "length": settings.credentials.length,
                "characterClasses": ["upper", "lower", "numeric", "special"],
                "rotation": platform.credentials.rotation,
            },
            "attestations": [
                attestation.model_dump(mode="json") for attestation in settings.attestations
            ],
            "planned": pulumi.runtime.is_dry_run(),
            "pki": {
                "organization": settings.pki.organization,
                "algorithm": settings.pki.algorithm,
                "ownCa": settings.pki.ca_certificate is not None,
                "certificateValidityDays": settings.pki.certificate_validity_days,
                "earlyRenewalDays": settings.pki.early_renewal_days,
            },
            "logging": settings.logging.model_dump(mode="json", by_alias=True),
            "flows": _flows(self),
            "compliance": compliance_summary(stack, settings),
            **self.extra_exports,
        }


def _backup_runs(platform: Platform) -> bool:
    """True when a backup container exists: only then is a volume of a backed-up class covered."""
    return platform.settings.backup.enabled and any(
        record.service == "backup" for record in platform.services
    )


def _services(platform: Platform) -> dict[str, dict]:
    return {
        record.service: {
            "container": record.container_name,
            "image": record.image,
            "zones": list(record.zones),
            "ports": [_published(port) for port in record.publish],
            "memoryMb": record.container.memory,
            "readOnlyRoot": record.read_only,
            **(
                {
                    "files": {
                        "carrier": record.carrier.name,
                        "directories": list(record.carrier.directories),
                    }
                }
                if record.carrier
                else {}
            ),
        }
        for record in platform.services
    }


def _published(port: Publish) -> dict:
    return {
        "address": port.address,
        "hostPort": port.host_port,
        "containerPort": port.container_port,
        "protocol": port.protocol,
        "purpose": port.purpose,
    }


def _flows(datacenter: HospitalDataCenter) -> list[dict]:
    """Every connection the stack is built to carry, from the party that opens it.

    Outside parties are `staff`, `security-team`, `agents`, `internet` and `modality:<name>`.
    """
    settings, platform = datacenter.settings, datacenter.platform
    present = {record.service for record in platform.services}
    flows = [
        flow
        for record in platform.services
        for port in record.publish
        for flow in _inbound(settings, record.service, port)
    ]
    for site in _sites(datacenter):
        if "gateway" in present and site.service in present:
            flows.append(
                _flow(
                    "gateway",
                    site.service,
                    site.upstream_port,
                    "https" if site.upstream_tls else "http",
                    f"serves https://{site.host_name}{_port_suffix(site.listen_port)}/",
                    zone=site.zone,
                )
            )
    database = "mysql (TLS)" if settings.is_prod else "mysql"
    for client, purpose in (("emr", "patient records"), ("backup", "nightly dump")):
        if client in present and "database" in present:
            flows.append(_flow(client, "database", DATABASE_PORT, database, purpose, zone="data"))
    if "pacs" in present:
        for name, modality in sorted(settings.pacs.modalities.items()):
            if "move" in modality.allow:
                flows.append(
                    _flow(
                        "pacs",
                        f"modality:{name}",
                        modality.port,
                        "dicom",
                        "C-STORE of the studies this modality retrieves (C-MOVE)",
                        address=modality.host,
                    )
                )
    if "edr" in present:
        flows += _edr_flows(datacenter, present)
    return flows


def _edr_flows(datacenter: HospitalDataCenter, present: set[str]) -> list[dict]:
    """The EDR server's own connections: its health probes of the web interfaces, which go out
    through the host to the gateway as staff browsers do, and its download of client releases."""
    settings = datacenter.settings
    flows = []
    if "gateway" in present:
        sites = {site.service: site for site in datacenter.edr.watched_sites}
        for target in probe_targets(list(sites.values())):
            site = sites[target.service]
            purpose = (
                f"health probe of {target.url} every {settings.edr.probe_period_seconds} s "
                "(Hospital.Server.ServiceHealth)"
            )
            if target.service == "pacs":
                purpose += (
                    "; polls its REST change log as edr-monitor (Hospital.Server.DicomTraffic)"
                )
            if ipaddress.ip_address(site.listen_address).is_loopback:
                purpose += "; fails while the gateway listens on loopback"
            flows.append(
                _flow(
                    "edr",
                    "gateway",
                    site.listen_port,
                    "https",
                    purpose,
                    zone="security",
                    address=site.listen_address,
                )
            )
    if settings.edr.build_client_packages:
        flows.append(
            _flow(
                "edr",
                "internet",
                HTTPS_PORT,
                "https",
                "first start only: downloads Velociraptor client releases from GitHub to build "
                "the MSI, DEB and RPM agent packages (Container.InitializeServer)",
                zone="security",
            )
        )
    return flows


def _inbound(settings: Settings, service: str, port: Publish) -> list[dict]:
    """Who connects to a published port: the audience of the address it is bound to."""
    addresses = settings.addresses
    arrives = {"address": port.address}
    if service == "pacs" and port.host_port == settings.pacs.dicom_port:
        return [
            _flow(
                f"modality:{name}",
                service,
                port.host_port,
                "dicom",
                f"DICOM {', '.join(sorted(modality.allow))} from AE {modality.aet} "
                f"at {modality.host}",
                **arrives,
            )
            for name, modality in sorted(settings.pacs.modalities.items())
        ]
    if port.address == str(addresses.management) and port.host_port == settings.edr.gui_port:
        audience = "security-team"
    elif port.address == str(addresses.agents) and port.host_port == settings.edr.frontend_port:
        audience = "agents"
    else:
        audience = "staff"
    return [_flow(audience, service, port.host_port, port.protocol, port.purpose, **arrives)]


def _port_suffix(port: int) -> str:
    return "" if port == HTTPS_PORT else f":{port}"


def _sites(datacenter: HospitalDataCenter) -> list[WebSite]:
    """The web interfaces the services hand the gateway."""
    return [
        component.site
        for component in vars(datacenter).values()
        if isinstance(component, pulumi.ComponentResource)
        and isinstance(getattr(component, "site", None), WebSite)
    ]


def _flow(
    source: str,
    target: str,
    port: int,
    protocol: str,
    purpose: str,
    *,
    zone: str | None = None,
    address: str | None = None,
) -> dict:
    flow = {"source": source, "target": target, "port": port, "protocol": protocol}
    flow["purpose"] = purpose
    if zone is not None:
        flow["zone"] = zone
    if address is not None:
        flow["address"] = address
    return flow

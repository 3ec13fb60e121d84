"""The composition: the foundation, then every service on it, and the stack's exports."""

from __future__ import annotations

from typing import Any

import pulumi

from components.credentials import Credentials
from components.edr import Edr
from components.gateway import Gateway
from components.network import TrustZones
from components.pacs import Pacs
from components.pki import Pki
from components.platform import Platform
from components.settings import Settings
from components.volumes import VolumeCatalog

EXPORT_SCHEMA_VERSION = 1


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

        self.endpoints: dict[str, pulumi.Input[Any]] = {}
        self.extra_exports: dict[str, pulumi.Input[Any]] = {}

        self.pacs = Pacs("pacs", self.platform, child)
        self.endpoints["pacs"] = self.pacs.https_endpoint
        self.extra_exports["dicom"] = self.pacs.dicom_endpoint

        watched = [getattr(self, name, None) for name in ("emr", "pacs")]
        self.edr = Edr(
            "edr", self.platform, [service.site for service in watched if service], opts=child
        )
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

        self.register_outputs({"endpoints": self.endpoints})

    def exports(self) -> dict[str, pulumi.Input[Any]]:
        """Every stack export, under a versioned schema that the docs generator reads."""
        platform, settings = self.platform, self.settings
        return {
            "schemaVersion": EXPORT_SCHEMA_VERSION,
            "environment": settings.environment,
            "domain": settings.domain,
            "endpoints": self.endpoints,
            "networks": platform.zones.describe(),
            "volumes": platform.volumes.describe(settings.backup.enabled),
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
            **self.extra_exports,
        }


def _services(platform: Platform) -> dict[str, dict]:
    return {
        record.service: {
            "container": record.container_name,
            "image": record.image,
            "zones": list(record.zones),
        }
        for record in platform.services
    }

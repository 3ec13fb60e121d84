"""The certificate authority and the service certificates it issues.

The CA is generated (ECDSA P-384 or RSA >= 3072) unless the stack carries the hospital's own CA.
Every certificate is renewed `earlyRenewalDays` before it expires, at the next `pulumi up`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import pulumi_tls as tls
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from components.config_model import CA_PRIVATE_KEY, NAMESPACE

if TYPE_CHECKING:
    from components.settings import Settings

CURVE = "P384"
CA_USES = ["cert_signing", "crl_signing", "digital_signature"]
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class ServiceCertificate:
    """A leaf certificate and its key, as handed to a service."""

    service: str
    dns_names: tuple[str, ...]
    cert_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]
    ca_cert_pem: pulumi.Output[str]
    not_after: pulumi.Output[str]

    def describe(self) -> pulumi.Output[dict]:
        """Subject, SANs, SHA-256 fingerprint and expiry: what the `certificates` export shows."""
        return pulumi.Output.all(self.cert_pem, self.not_after).apply(
            lambda values: {**describe_certificate(values[0]), "notAfter": values[1]}
        )


class Pki(pulumi.ComponentResource):
    """A CA and a method that issues service certificates signed by it."""

    def __init__(
        self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hospital:components:Pki", name, None, opts)
        self._name = name
        self._settings = settings.pki
        self._stack = pulumi.get_stack()
        self.certificates: list[ServiceCertificate] = []

        if settings.pki.ca_certificate is not None:
            self.ca_cert_pem = pulumi.Output.from_input(settings.pki.ca_certificate)
            self.ca_private_key_pem = pulumi.Config(NAMESPACE).require_secret(CA_PRIVATE_KEY)
            self.ca_not_after = self.ca_cert_pem.apply(
                lambda pem: describe_certificate(pem)["notAfter"]
            )
            pulumi.log.info("PKI: issuing certificates from the hospital's own CA", self)
        else:
            ca_key = self._private_key(f"{name}-ca")
            ca = tls.SelfSignedCert(
                f"{name}-ca",
                tls.SelfSignedCertArgs(
                    private_key_pem=ca_key.private_key_pem,
                    subject=tls.SelfSignedCertSubjectArgs(
                        common_name=f"{settings.pki.organization} Root CA ({self._stack})",
                        organization=settings.pki.organization,
                    ),
                    is_ca_certificate=True,
                    validity_period_hours=settings.pki.ca_validity_days * HOURS_PER_DAY,
                    early_renewal_hours=settings.pki.early_renewal_days * HOURS_PER_DAY,
                    allowed_uses=CA_USES,
                    set_subject_key_id=True,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.ca_cert_pem = ca.cert_pem
            self.ca_private_key_pem = pulumi.Output.secret(ca_key.private_key_pem)
            self.ca_not_after = ca.validity_end_time

        self.register_outputs({"caCertPem": self.ca_cert_pem})

    def issue(
        self,
        service: str,
        dns_names: Sequence[str],
        *,
        server: bool = True,
        client: bool = False,
        ip_addresses: Sequence[str] = (),
    ) -> ServiceCertificate:
        """Issue a certificate for `service`, valid for `dns_names` (the first is the subject)
        and `ip_addresses` (for peers that dial an address, such as a modality)."""
        names = tuple(dict.fromkeys(dns_names))
        key = self._private_key(f"{self._name}-{service}")
        request = tls.CertRequest(
            f"{self._name}-{service}",
            tls.CertRequestArgs(
                private_key_pem=key.private_key_pem,
                subject=tls.CertRequestSubjectArgs(
                    common_name=names[0], organization=self._settings.organization
                ),
                dns_names=list(names),
                ip_addresses=list(dict.fromkeys(ip_addresses)),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        uses = ["digital_signature"]
        if self._settings.algorithm == "RSA":
            uses.append("key_encipherment")
        uses += ["server_auth"] * server + ["client_auth"] * client
        certificate = tls.LocallySignedCert(
            f"{self._name}-{service}",
            tls.LocallySignedCertArgs(
                cert_request_pem=request.cert_request_pem,
                ca_private_key_pem=self.ca_private_key_pem,
                ca_cert_pem=self.ca_cert_pem,
                validity_period_hours=self._settings.certificate_validity_days * HOURS_PER_DAY,
                early_renewal_hours=self._settings.early_renewal_days * HOURS_PER_DAY,
                allowed_uses=uses,
                set_subject_key_id=True,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        issued = ServiceCertificate(
            service=service,
            dns_names=names,
            cert_pem=certificate.cert_pem,
            private_key_pem=pulumi.Output.secret(key.private_key_pem),
            ca_cert_pem=self.ca_cert_pem,
            not_after=certificate.validity_end_time,
        )
        self.certificates.append(issued)
        return issued

    def describe(self) -> dict[str, pulumi.Output]:
        """The `certificates` export: the CA and every issued certificate."""
        described = {
            "ca": pulumi.Output.all(self.ca_cert_pem, self.ca_not_after).apply(
                lambda values: {**describe_certificate(values[0]), "notAfter": values[1]}
            )
        }
        described.update({cert.service: cert.describe() for cert in self.certificates})
        return described

    def _private_key(self, resource_name: str) -> tls.PrivateKey:
        if self._settings.algorithm == "RSA":
            args = tls.PrivateKeyArgs(algorithm="RSA", rsa_bits=self._settings.rsa_bits)
        else:
            args = tls.PrivateKeyArgs(algorithm="ECDSA", ecdsa_curve=CURVE)
        return tls.PrivateKey(
            resource_name,
            args,
            opts=pulumi.ResourceOptions(
                parent=self, additional_secret_outputs=["privateKeyPem", "privateKeyOpenssh"]
            ),
        )


def describe_certificate(pem: str) -> dict:
    """Subject, SANs and SHA-256 fingerprint of a PEM certificate (public facts only)."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    try:
        alternatives = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except x509.ExtensionNotFound:
        sans = []
    else:
        sans = alternatives.get_values_for_type(x509.DNSName) + [
            str(address) for address in alternatives.get_values_for_type(x509.IPAddress)
        ]
    der = certificate.public_bytes(encoding=Encoding.DER)
    return {
        "subject": certificate.subject.rfc4514_string(),
        "sans": list(sans),
        "sha256": hashlib.sha256(der).hexdigest(),
        "notAfter": certificate.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
    }

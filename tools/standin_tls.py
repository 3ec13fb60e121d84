"""Real keys, CSRs and X.509 certificates from pulumi-tls inputs, made with `cryptography`.

Mirrors what the tls provider (Go's crypto/x509) puts into a certificate, so tests can
verify chains, SANs, usages and validity as they would against the real provider.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import random
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from pulumi.runtime.rpc import wrap_rpc_secret

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"
GET_PUBLIC_KEY = "tls:index/getPublicKey:getPublicKey"

DEFAULT_RSA_BITS = 2048
DEFAULT_ECDSA_CURVE = "P224"
CURVES: dict[str, ec.EllipticCurve] = {
    "P224": ec.SECP224R1(),
    "P256": ec.SECP256R1(),
    "P384": ec.SECP384R1(),
    "P521": ec.SECP521R1(),
}

# The provider's `allowed_uses` names: key usage flags (cryptography's KeyUsage arguments)
# and extended key usage OIDs.
KEY_USAGE_FLAGS = {
    "digital_signature": "digital_signature",
    "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment",
    "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
    "encipher_only": "encipher_only",
    "decipher_only": "decipher_only",
}
EXTENDED_KEY_USAGES = {
    "any_extended": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec_end_system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec_tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec_user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft_server_gated_crypto": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape_server_gated_crypto": ObjectIdentifier("2.16.840.1.113730.4.1"),
    "microsoft_commercial_code_signing": ObjectIdentifier("1.3.6.1.4.1.311.2.1.22"),
    "microsoft_kernel_code_signing": ObjectIdentifier("1.3.6.1.4.1.311.61.1.1"),
}

# Go's pkix.Name order of relative distinguished names, with the provider's input names.
SUBJECT_FIELDS = (
    ("country", NameOID.COUNTRY_NAME),
    ("province", NameOID.STATE_OR_PROVINCE_NAME),
    ("locality", NameOID.LOCALITY_NAME),
    ("streetAddresses", NameOID.STREET_ADDRESS),
    ("postalCode", NameOID.POSTAL_CODE),
    ("organization", NameOID.ORGANIZATION_NAME),
    ("organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("commonName", NameOID.COMMON_NAME),
    ("serialNumber", NameOID.SERIAL_NUMBER),
    ("emailAddress", NameOID.EMAIL_ADDRESS),
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_RSA_CACHE: dict[tuple[str, int], rsa.RSAPrivateKey] = {}
_RSA_CACHE_LOCK = threading.Lock()


class TlsInputError(ValueError):
    """An input the tls provider would reject, with the input name in the message."""


def private_key(
    inputs: Mapping[str, Any], rng: random.Random, seed_key: str | None
) -> tuple[str, dict[str, Any]]:
    """A PrivateKey's outputs: PEM/PKCS#8/OpenSSH private key (secret), public key, prints."""
    algorithm = str(inputs.get("algorithm", ""))
    key = _generate_key(algorithm, inputs, rng, seed_key)
    outputs = {
        **inputs,
        "privateKeyPem": wrap_rpc_secret(_traditional_pem(key)),
        "privateKeyPemPkcs8": wrap_rpc_secret(_pkcs8_pem(key)),
        "privateKeyOpenssh": wrap_rpc_secret(_openssh_private(key)),
        **public_key_facts(key),
    }
    if algorithm == "RSA":
        outputs["rsaBits"] = inputs.get("rsaBits", DEFAULT_RSA_BITS)
    if algorithm == "ECDSA":
        outputs["ecdsaCurve"] = inputs.get("ecdsaCurve", DEFAULT_ECDSA_CURVE)
    key_id = hashlib.sha1(outputs["publicKeyPem"].encode()).hexdigest()
    return key_id, outputs


def public_key_facts(key: PrivateKey) -> dict[str, str]:
    """publicKeyPem, publicKeyOpenssh and both SSH fingerprints ("" where SSH has no format)."""
    public = key.public_key()
    facts = {
        "publicKeyPem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
        "publicKeyOpenssh": "",
        "publicKeyFingerprintMd5": "",
        "publicKeyFingerprintSha256": "",
    }
    try:
        openssh = public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).decode()
    except ValueError:
        # SSH has no P-224 key type; the provider leaves these outputs empty too.
        return facts
    wire = base64.b64decode(openssh.split()[1])
    md5 = hashlib.md5(wire).hexdigest()
    facts["publicKeyOpenssh"] = openssh + "\n"
    facts["publicKeyFingerprintMd5"] = ":".join(md5[i : i + 2] for i in range(0, 32, 2))
    sha256 = base64.b64encode(hashlib.sha256(wire).digest()).decode().rstrip("=")
    facts["publicKeyFingerprintSha256"] = f"SHA256:{sha256}"
    return facts


def public_key_lookup(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The getPublicKey function: public facts of a given private key PEM."""
    pem = arguments.get("privateKeyPem") or arguments.get("privateKeyOpenssh")
    if not pem:
        raise TlsInputError("getPublicKey needs privateKeyPem or privateKeyOpenssh")
    key = _load_private_key(str(pem), "privateKeyPem")
    return {**arguments, "algorithm": key_algorithm(key), **public_key_facts(key)}


def self_signed_cert(
    inputs: Mapping[str, Any], rng: random.Random, now: datetime
) -> tuple[str, dict[str, Any]]:
    """A SelfSignedCert: subject, SANs, usages and validity from inputs, signed by its own key."""
    key = _load_private_key(_required(inputs, "privateKeyPem"), "privateKeyPem")
    subject = subject_name(inputs.get("subject"))
    sans = _sans(inputs)
    is_ca = bool(inputs.get("isCaCertificate", False))
    subject_key_id = (
        x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        if inputs.get("setSubjectKeyId") or is_ca
        else None
    )
    authority_key_id = None
    if inputs.get("setAuthorityKeyId"):
        ski = subject_key_id or x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        authority_key_id = x509.AuthorityKeyIdentifier(ski.digest, None, None)

    certificate, start, end = _issue(
        subject=subject,
        issuer=subject,
        public_key=key.public_key(),
        signer=key,
        sans=sans,
        inputs=inputs,
        rng=rng,
        now=now,
        subject_key_id=subject_key_id,
        authority_key_id=authority_key_id,
    )
    outputs = {
        **_certificate_defaults(inputs),
        "certPem": _cert_pem(certificate),
        "keyAlgorithm": key_algorithm(key),
        **_validity_outputs(inputs, start, end, now),
    }
    return str(certificate.serial_number), outputs


def cert_request(inputs: Mapping[str, Any], deterministic: bool) -> tuple[str, dict[str, Any]]:
    """A CertRequest: a PKCS#10 CSR carrying the subject and SANs, signed by the key."""
    key = _load_private_key(_required(inputs, "privateKeyPem"), "privateKeyPem")
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        subject_name(inputs.get("subject"))
    )
    sans = _sans(inputs)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    request = builder.sign(key, _signature_hash(key), **_deterministic(key, deterministic))
    pem = request.public_bytes(serialization.Encoding.PEM).decode()
    outputs = {**inputs, "certRequestPem": pem, "keyAlgorithm": key_algorithm(key)}
    return hashlib.sha1(pem.encode()).hexdigest(), outputs


def locally_signed_cert(
    inputs: Mapping[str, Any], rng: random.Random, now: datetime
) -> tuple[str, dict[str, Any]]:
    """A LocallySignedCert: the CSR's subject, SANs and key, issued and signed by the CA."""
    ca_key = _load_private_key(_required(inputs, "caPrivateKeyPem"), "caPrivateKeyPem")
    ca_cert = _load_certificate(_required(inputs, "caCertPem"), "caCertPem")
    request = _load_request(_required(inputs, "certRequestPem"))
    if ca_cert.public_key() != ca_key.public_key():
        raise TlsInputError("caPrivateKeyPem does not belong to caCertPem")

    try:
        sans = list(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    subject_key_id = (
        x509.SubjectKeyIdentifier.from_public_key(request.public_key())
        if inputs.get("setSubjectKeyId") or inputs.get("isCaCertificate")
        else None
    )
    authority_key_id = None
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        authority_key_id = x509.AuthorityKeyIdentifier(ca_ski.digest, None, None)
    except x509.ExtensionNotFound:
        pass

    certificate, start, end = _issue(
        subject=request.subject,
        issuer=ca_cert.subject,
        public_key=request.public_key(),
        signer=ca_key,
        sans=sans,
        inputs=inputs,
        rng=rng,
        now=now,
        subject_key_id=subject_key_id,
        authority_key_id=authority_key_id,
    )
    outputs = {
        **_certificate_defaults(inputs),
        "certPem": _cert_pem(certificate),
        "caKeyAlgorithm": key_algorithm(ca_key),
        **_validity_outputs(inputs, start, end, now),
    }
    return str(certificate.serial_number), outputs


def subject_name(subject: Any) -> x509.Name:
    """An X.509 name from the provider's `subject` block (an object, or a one-item list)."""
    if isinstance(subject, Sequence) and not isinstance(subject, str):
        subject = subject[0] if subject else None
    if not subject:
        return x509.Name([])
    attributes = []
    for field_name, oid in SUBJECT_FIELDS:
        value = subject.get(field_name)
        if value in (None, "", []):
            continue
        for text in value if isinstance(value, list) else [value]:
            attributes.append(x509.RelativeDistinguishedName([x509.NameAttribute(oid, str(text))]))
    return x509.Name(attributes)


def key_algorithm(key: Any) -> str:
    """The provider's name for a key's algorithm: RSA, ECDSA or ED25519."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RSA"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ECDSA"
    return "ED25519"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _generate_key(
    algorithm: str, inputs: Mapping[str, Any], rng: random.Random, seed_key: str | None
) -> PrivateKey:
    if algorithm == "RSA":
        bits = int(inputs.get("rsaBits", DEFAULT_RSA_BITS))
        if bits < 1024:
            raise TlsInputError(f"rsaBits: {bits} is too small for an RSA key")
        if seed_key is None:
            return rsa.generate_private_key(public_exponent=65537, key_size=bits)
        # Limitation: cryptography cannot derive an RSA key from a seed; a seeded run reuses
        # one key per (seed, resource) within this process instead.
        with _RSA_CACHE_LOCK:
            cache_key = (seed_key, bits)
            if cache_key not in _RSA_CACHE:
                _RSA_CACHE[cache_key] = rsa.generate_private_key(65537, bits)
            return _RSA_CACHE[cache_key]
    if algorithm == "ECDSA":
        curve_name = str(inputs.get("ecdsaCurve", DEFAULT_ECDSA_CURVE))
        if curve_name not in CURVES:
            raise TlsInputError(
                f"ecdsaCurve: {curve_name!r} is not one of {', '.join(sorted(CURVES))}"
            )
        curve = CURVES[curve_name]
        # One bit short of the curve size keeps the scalar below the group order.
        scalar = rng.getrandbits(curve.key_size - 1) | 1
        return ec.derive_private_key(scalar, curve)
    if algorithm == "ED25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(
            rng.getrandbits(256).to_bytes(32, "big")
        )
    raise TlsInputError(f"algorithm: {algorithm!r} is not one of RSA, ECDSA, ED25519")


def _traditional_pem(key: PrivateKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _pkcs8_pem(key)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _pkcs8_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _openssh_private(key: PrivateKey) -> str:
    try:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
    except ValueError:
        return ""


def _load_private_key(pem: str, input_name: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as broken:
        raise TlsInputError(f"{input_name}: not a PEM private key") from broken
    if not isinstance(
        key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
    ):
        raise TlsInputError(f"{input_name}: unsupported key type")
    return key


def _load_certificate(pem: str, input_name: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as broken:
        raise TlsInputError(f"{input_name}: not a PEM certificate") from broken


def _load_request(pem: str) -> x509.CertificateSigningRequest:
    try:
        request = x509.load_pem_x509_csr(pem.encode())
    except ValueError as broken:
        raise TlsInputError("certRequestPem: not a PEM certificate request") from broken
    if not request.is_signature_valid:
        raise TlsInputError("certRequestPem: the request's signature does not verify")
    return request


def _required(inputs: Mapping[str, Any], name: str) -> str:
    value = inputs.get(name)
    if not isinstance(value, str) or not value:
        raise TlsInputError(f"{name} is required")
    return value


def _sans(inputs: Mapping[str, Any]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(str(n)) for n in inputs.get("dnsNames") or []]
    for address in inputs.get("ipAddresses") or []:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(str(address))))
        except ValueError as broken:
            raise TlsInputError(f"ipAddresses: {address!r} is not an IP address") from broken
    names.extend(x509.UniformResourceIdentifier(str(u)) for u in inputs.get("uris") or [])
    return names


def _usages(allowed_uses: Sequence[str]) -> tuple[x509.KeyUsage | None, list[ObjectIdentifier]]:
    flags = dict.fromkeys(KEY_USAGE_FLAGS.values(), False)
    extended: list[ObjectIdentifier] = []
    for usage in allowed_uses:
        if usage in KEY_USAGE_FLAGS:
            flags[KEY_USAGE_FLAGS[usage]] = True
        elif usage in EXTENDED_KEY_USAGES:
            extended.append(EXTENDED_KEY_USAGES[usage])
        else:
            raise TlsInputError(f"allowedUses: {usage!r} is not a usage the tls provider knows")
    if (flags["encipher_only"] or flags["decipher_only"]) and not flags["key_agreement"]:
        raise TlsInputError("allowedUses: encipher_only/decipher_only need key_agreement")
    key_usage = x509.KeyUsage(**flags) if any(flags.values()) else None
    return key_usage, extended


def _issue(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: Any,
    signer: PrivateKey,
    sans: list[x509.GeneralName],
    inputs: Mapping[str, Any],
    rng: random.Random,
    now: datetime,
    subject_key_id: x509.SubjectKeyIdentifier | None,
    authority_key_id: x509.AuthorityKeyIdentifier | None,
) -> tuple[x509.Certificate, datetime, datetime]:
    hours = inputs.get("validityPeriodHours")
    if hours is None:
        raise TlsInputError("validityPeriodHours is required")
    start = now.astimezone(UTC).replace(microsecond=0)
    end = start + timedelta(hours=float(hours))
    is_ca = bool(inputs.get("isCaCertificate", False))
    path_length = inputs.get("maxPathLength")
    key_usage, extended = _usages(inputs.get("allowedUses") or [])

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(rng.getrandbits(128) | 1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.BasicConstraints(
                ca=is_ca,
                path_length=int(path_length) if is_ca and path_length is not None else None,
            ),
            critical=True,
        )
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    if subject_key_id is not None:
        builder = builder.add_extension(subject_key_id, critical=False)
    if authority_key_id is not None:
        builder = builder.add_extension(authority_key_id, critical=False)
    if sans:
        # RFC 5280: the SAN extension is critical when the subject is empty.
        builder = builder.add_extension(
            x509.SubjectAlternativeName(sans), critical=len(subject) == 0
        )
    deterministic = not isinstance(rng, random.SystemRandom)
    certificate = builder.sign(
        signer, _signature_hash(signer), **_deterministic(signer, deterministic)
    )
    return certificate, start, end


def _signature_hash(key: PrivateKey) -> hashes.HashAlgorithm | None:
    """The hash Go's x509 picks for a signing key."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size > 384:
            return hashes.SHA512()
        if key.curve.key_size > 256:
            return hashes.SHA384()
    return hashes.SHA256()


def _deterministic(key: PrivateKey, wanted: bool) -> dict[str, bool]:
    return (
        {"ecdsa_deterministic": True}
        if wanted and isinstance(key, ec.EllipticCurvePrivateKey)
        else {}
    )


def _cert_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _certificate_defaults(inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **inputs,
        "earlyRenewalHours": inputs.get("earlyRenewalHours", 0),
        "isCaCertificate": inputs.get("isCaCertificate", False),
        "setSubjectKeyId": inputs.get("setSubjectKeyId", False),
    }


def _validity_outputs(
    inputs: Mapping[str, Any], start: datetime, end: datetime, now: datetime
) -> dict[str, Any]:
    early = timedelta(hours=float(inputs.get("earlyRenewalHours", 0) or 0))
    return {
        "validityStartTime": rfc3339(start),
        "validityEndTime": rfc3339(end),
        "readyForRenewal": now.astimezone(UTC) >= end - early,
    }

"""Shared fixtures of the unit tests: one offline preview per committed stack, and CAs."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tools.preview import run_program
from tools.recording import Recording


@pytest.fixture(scope="session")
def prod_recording() -> Recording:
    """The committed prod stack, run once for the whole session."""
    return run_program("prod")


@pytest.fixture(scope="session")
def dev_recording() -> Recording:
    """The committed dev stack, run once for the whole session."""
    return run_program("dev")


def _ca(key) -> tuple[str, str]:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hospital Test Root CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA384())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


@pytest.fixture(scope="session")
def own_ca() -> tuple[str, str]:
    """A hospital's own P-384 CA: (certificate PEM, private key PEM)."""
    return _ca(ec.generate_private_key(ec.SECP384R1()))


@pytest.fixture(scope="session")
def own_ca_pem(own_ca: tuple[str, str]) -> str:
    return own_ca[0]


@pytest.fixture(scope="session")
def weak_ca_pem() -> str:
    """A CA certificate whose RSA key is too short for the stack's rules."""
    return _ca(rsa.generate_private_key(public_exponent=65537, key_size=2048))[0]

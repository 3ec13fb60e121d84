"""Real clients against a replayed stack: HTTPS through the gateway verified against the stack's
CA, TLS handshakes pinned to one protocol version, MariaDB over TLS or plain TCP.

`stack` is anything with the replayed stack's look-ups (tests/conformance's ReplayedStack):
`published(service, port)`, `host_name(service)`, `address(service)`, `uploaded(service,
path)`, `environment(service)` and `ca_file`, a path to the generated CA's PEM. The secrets
these read come from the recording, to act as the stack's own clients would.
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

import httpx
import pymysql

HTTPS_PORT = 8443
HTTP_PORT = 8080
MARIADB_PORT = 3306
ORTHANC_CREDENTIALS = "/etc/orthanc/credentials.json"
ORTHANC_DICOM = "/etc/orthanc/dicom.json"


def https_get(
    stack: Any, service: str, path: str, auth: tuple[str, str] | None = None
) -> httpx.Response:
    """GET https://<service host name><path> through the gateway's published port, verified
    against the generated CA for the service's host name (SNI and certificate check)."""
    address, port = stack.published("gateway", HTTPS_PORT)
    host_name = stack.host_name(service)
    context = ssl.create_default_context(cafile=stack.ca_file)
    with httpx.Client(verify=context, timeout=60) as client:
        return client.get(
            f"https://{address}:{port}{path}",
            headers={"Host": host_name},
            extensions={"sni_hostname": host_name},
            auth=auth,
        )


def handshake(stack: Any, version: ssl.TLSVersion, service: str = "pacs") -> str:
    """The protocol a handshake pinned to `version` negotiated, or `refused: <reason>`."""
    address, port = stack.published("gateway", HTTPS_PORT)
    context = ssl.create_default_context(cafile=stack.ca_file)
    # Let this client offer old protocols so that a refusal can only come from the server.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = version
    context.maximum_version = version
    try:
        with (
            socket.create_connection((address, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=stack.host_name(service)) as tls,
        ):
            return tls.version() or "unknown"
    except (ssl.SSLError, ConnectionError) as error:
        return f"refused: {error}"


def orthanc_user(stack: Any, name: str = "admin") -> tuple[str, str]:
    """A generated Orthanc account as (name, password)."""
    users = json.loads(stack.uploaded("pacs", ORTHANC_CREDENTIALS))["RegisteredUsers"]
    return name, users[name]


def orthanc_dicom(stack: Any) -> dict[str, Any]:
    """The DICOM part of Orthanc's rendered configuration (AET, modalities, checks)."""
    return json.loads(stack.uploaded("pacs", ORTHANC_DICOM))


def storing_modality(stack: Any) -> dict[str, Any]:
    """The first configured modality allowed to C-STORE."""
    modalities = orthanc_dicom(stack)["DicomModalities"]
    return next(m for m in modalities.values() if m.get("AllowStore"))


def database_connection(
    stack: Any, tls: bool = True, autocommit: bool = False
) -> pymysql.connections.Connection:
    """The application account's connection: over TLS verified against the stack's CA or, with
    `tls` False, over plain TCP (PyMySQL would otherwise upgrade to TLS on its own)."""
    environment = stack.environment("database")
    options: dict[str, Any] = {"ssl_disabled": True}
    if tls:
        context = ssl.create_default_context(cafile=stack.ca_file)
        context.check_hostname = False  # reached by address; the CA is still checked
        options = {"ssl": context}
    return pymysql.connect(
        host=stack.address("database"),
        port=MARIADB_PORT,
        user=environment["MARIADB_USER"],
        password=stack.uploaded("database", environment["MARIADB_PASSWORD_FILE"]).strip(),
        database=environment["MARIADB_DATABASE"],
        connect_timeout=10,
        autocommit=autocommit,
        **options,
    )

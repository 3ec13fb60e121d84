"""What a container exposes: published ports, their host addresses, and TLS on what is exposed.

A published port is `ports[]` with `ip` defaulting to every interface (0.0.0.0), as the docker
provider fills it in.
"""

import re

from pulumi_policy import Severity

from .framework import CONTAINER, resource_policy, schema, setting
from .inputs import (
    ANY_ADDRESS,
    command_line,
    environment,
    host_address,
    host_port,
    host_port_text,
    is_loopback,
    published_port_count,
    published_ports,
    service,
    uploads_text,
)
from .nginx import redirects_only

ACCESS_CONTROL = "164.312(a)(1)"
TRANSMISSION = "164.312(e)(1)"
TRANSMISSION_ENCRYPTION = "164.312(e)(2)(ii)"

OLD_TLS_PROTOCOLS = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"}
DATABASE_TLS_SETTING = re.compile(
    r"^\s*require[_-]secure[_-]transport\s*=\s*(on|1|true)\s*$", re.IGNORECASE | re.MULTILINE
)
DATABASE_TLS_FLAG = re.compile(r"^--require[_-]secure[_-]transport(=(on|1|true))?$", re.IGNORECASE)
DATABASE_CERT_SETTING = re.compile(r"^\s*ssl[_-]cert\s*=", re.IGNORECASE | re.MULTILINE)
EMR_TLS_VARIABLES = ("FORCE_DATABASE_SSL_CONNECT", "FORCE_DATABASE_X509_CONNECT")

ADDRESS_SCHEMA = schema(
    allowedHostAddresses={
        "type": "array",
        "items": {"type": "string"},
        "default": [],
        "description": "Host addresses ports may bind to; empty allows any specific address.",
    }
)


def validate_bound_addresses(args, report_violation):
    allowed = setting(args, ADDRESS_SCHEMA, "allowedHostAddresses")
    for port in published_ports(args.props):
        address = host_address(port)
        if address in ANY_ADDRESS:
            report_violation(
                f"Container '{args.name}' publishes {host_port_text(port)} on every host "
                "interface; set `ports[].ip` to the interface that should serve it."
            )
        elif allowed and address not in allowed:
            report_violation(
                f"Container '{args.name}' publishes {host_port_text(port)} on {address}, "
                "which is not an allowed host address."
            )


PRIVILEGED_PORTS_SCHEMA = schema(
    allowedPrivilegedPorts={
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": 1023},
        "default": [80, 443],
        "description": "Host ports below 1024 that may be published (HTTP redirect, HTTPS).",
    }
)


def validate_privileged_ports(args, report_violation):
    allowed = setting(args, PRIVILEGED_PORTS_SCHEMA, "allowedPrivilegedPorts")
    for port in published_ports(args.props):
        number = host_port(port)
        if number is not None and number < 1024 and number not in allowed:
            report_violation(
                f"Container '{args.name}' publishes privileged host port {number}; use a port "
                "of 1024 or above, or allow it in the pack config."
            )


PUBLISHING_SCHEMA = schema(
    publishingServices={
        "type": "array",
        "items": {"type": "string"},
        "default": ["gateway", "pacs", "edr"],
        "description": "Services allowed to publish ports on the host.",
    }
)


def validate_published_services(args, report_violation):
    if args.props.get("publishAllPorts", False):
        report_violation(
            f"Container '{args.name}' publishes every exposed port; remove `publishAllPorts` "
            "and list the ports it needs."
        )
    count = published_port_count(args.props)
    if not count:
        return
    name = service(args.props)
    if name not in setting(args, PUBLISHING_SCHEMA, "publishingServices"):
        report_violation(
            f"Container '{args.name}' ({name or 'unidentified service'}) publishes {count} "
            "port(s) but is not an edge service; reach it through the gateway."
        )


def validate_database_unpublished(args, report_violation):
    if service(args.props) != "database":
        args.not_applicable("not the database")
    if published_port_count(args.props) or args.props.get("publishAllPorts", False):
        report_violation(
            f"Database container '{args.name}' publishes ports on the host; remove `ports` so "
            "only the data zone can reach it."
        )


WEB_TLS_SCHEMA = schema(
    plainHttpPorts={
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": 65535},
        "default": [80, 8080, 8042, 8888],
        "description": "Container ports that speak plain HTTP.",
    },
    allowLoopbackHttp={
        "type": "boolean",
        "default": False,
        "description": "Tolerate plain HTTP published on a loopback address (laboratory use).",
    },
)


def validate_web_tls(args, report_violation):
    plain = setting(args, WEB_TLS_SCHEMA, "plainHttpPorts")
    loopback_ok = setting(args, WEB_TLS_SCHEMA, "allowLoopbackHttp")
    exposed = [
        port
        for port in published_ports(args.props)
        if int(port.get("internal", 0)) in plain
        and not (loopback_ok and is_loopback(host_address(port)))
    ]
    if not exposed:
        return
    gateway_config = ""
    if service(args.props) == "gateway":
        gateway_config = "\n".join(text for _, text in uploads_text(args.props, ".conf"))
    for port in exposed:
        internal = int(port["internal"])
        if gateway_config and redirects_only(gateway_config, internal):
            continue  # an HTTP listener that only redirects to HTTPS carries no PHI
        report_violation(
            f"Container '{args.name}' publishes plain HTTP (container port {internal}) on "
            f"{host_port_text(port)} of the host; serve it through the TLS gateway instead."
        )


GATEWAY_TLS_SCHEMA = schema(
    minimumTlsVersion={"type": "string", "enum": ["TLSv1.2", "TLSv1.3"], "default": "TLSv1.2"}
)


def tls_protocols(config_text: str) -> list[set[str]]:
    """Every `ssl_protocols` directive of an nginx configuration, as sets of protocol names."""
    found = re.findall(r"^\s*ssl_protocols\s+([^;]+);", config_text, re.MULTILINE)
    return [set(directive.split()) for directive in found]


def validate_gateway_tls(args, report_violation):
    if service(args.props) != "gateway":
        args.not_applicable("not the gateway")
    config = "\n".join(text for _, text in uploads_text(args.props, ".conf"))
    if "ssl_certificate" not in config or not re.search(r"listen\s+[^;]*\bssl\b", config):
        report_violation(
            f"Gateway '{args.name}' does not terminate TLS; upload an nginx configuration with "
            "`listen ... ssl` and `ssl_certificate`."
        )
        return
    weakest = {"TLSv1.2": OLD_TLS_PROTOCOLS, "TLSv1.3": OLD_TLS_PROTOCOLS | {"TLSv1.2"}}
    too_old = weakest[setting(args, GATEWAY_TLS_SCHEMA, "minimumTlsVersion")]
    protocols = tls_protocols(config)
    if not protocols or any(directive & too_old for directive in protocols):
        report_violation(
            f"Gateway '{args.name}' allows TLS versions below the minimum or leaves "
            "`ssl_protocols` unset; list only TLSv1.2 and TLSv1.3."
        )


def database_requires_tls(props) -> bool:
    configured = any(DATABASE_TLS_SETTING.search(text) for _, text in uploads_text(props, ".cnf"))
    flagged = any(DATABASE_TLS_FLAG.match(word) for word in command_line(props))
    return configured or flagged


def validate_database_tls(args, report_violation):
    name = service(args.props)
    if name not in ("database", "emr"):
        args.not_applicable("neither the database nor its client")
    if name == "database":
        if not database_requires_tls(args.props):
            report_violation(
                f"Database container '{args.name}' accepts unencrypted clients; set "
                "`require_secure_transport=ON` with `ssl_cert`/`ssl_key` in its server config."
            )
        elif not any(
            DATABASE_CERT_SETTING.search(text) for _, text in uploads_text(args.props, ".cnf")
        ):
            report_violation(
                f"Database container '{args.name}' requires TLS but names no `ssl_cert`; "
                "configure the server certificate from the hospital CA."
            )
    if name == "emr":
        variables = environment(args.props, complete=True)
        if not any(variables.get(key) == "1" for key in EMR_TLS_VARIABLES):
            report_violation(
                f"EMR container '{args.name}' connects to the database without TLS; set "
                "FORCE_DATABASE_SSL_CONNECT=1."
            )


POLICIES = [
    resource_policy(
        name="container-disallow-unbound-ports",
        description="Published ports bind to a chosen host address, never to every interface.",
        validate=validate_bound_addresses,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[ACCESS_CONTROL, TRANSMISSION],
        cis=["5.14"],
        remediation="Set `ports[].ip` to the loopback (dev) or the serving interface (prod).",
        config_schema=ADDRESS_SCHEMA,
    ),
    resource_policy(
        name="container-disallow-privileged-host-ports",
        description="Containers publish no host port below 1024 except the allowed ones.",
        validate=validate_privileged_ports,
        resource_types=[CONTAINER],
        severity=Severity.LOW,
        citations=[ACCESS_CONTROL],
        cis=["5.8"],
        remediation="Publish on a port of 1024 or above, or allow the port explicitly.",
        config_schema=PRIVILEGED_PORTS_SCHEMA,
    ),
    resource_policy(
        name="container-disallow-unexpected-published-ports",
        description="Only edge services publish ports, and never all exposed ports at once.",
        validate=validate_published_services,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[ACCESS_CONTROL, TRANSMISSION],
        cis=["5.9"],
        remediation="Remove `ports` and `publishAllPorts`; route access through the gateway.",
        config_schema=PUBLISHING_SCHEMA,
    ),
    resource_policy(
        name="container-disallow-published-database",
        description="The database container is never published on the host.",
        validate=validate_database_unpublished,
        resource_types=[CONTAINER],
        severity=Severity.CRITICAL,
        citations=[ACCESS_CONTROL, TRANSMISSION],
        cis=["5.9"],
        remediation="Remove the database's `ports`; clients reach it over the data network.",
    ),
    resource_policy(
        name="container-enforce-tls-on-web-ports",
        description="No plain-HTTP container port is published; web traffic goes through TLS.",
        validate=validate_web_tls,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[TRANSMISSION, TRANSMISSION_ENCRYPTION],
        remediation="Unpublish the HTTP port and route the service through the TLS gateway.",
        config_schema=WEB_TLS_SCHEMA,
        reads_files=True,
    ),
    resource_policy(
        name="container-enforce-gateway-tls",
        description="The gateway terminates TLS with only modern protocol versions.",
        validate=validate_gateway_tls,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[TRANSMISSION, TRANSMISSION_ENCRYPTION],
        remediation="Configure `listen 8443 ssl`, `ssl_certificate` and "
        "`ssl_protocols TLSv1.2 TLSv1.3` in the uploaded nginx configuration.",
        config_schema=GATEWAY_TLS_SCHEMA,
        reads_files=True,
    ),
    resource_policy(
        name="container-enforce-database-tls",
        description="The database requires TLS from clients and the EMR connects with TLS.",
        validate=validate_database_tls,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[TRANSMISSION, TRANSMISSION_ENCRYPTION],
        remediation="Upload a MariaDB config with `require_secure_transport=ON` and ssl_* paths; "
        "set FORCE_DATABASE_SSL_CONNECT=1 on OpenEMR.",
        reads_files=True,
    ),
]

"""Compliant resource builders and runners that call rules exactly as the policy analyzer does.

Props pass through `unknown_checking_proxy`, config gets the schema defaults the CLI fills,
and an UnknownValueError becomes the engine's "can't run during preview" diagnostic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError

from policies.hipaa_rules import POLICIES
from tools.check import PackConfig, engine_props

RULES = {policy.name: policy for policy in POLICIES}
CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
STACK = "pulumi:pulumi:Stack"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown-string sentinel
SECRET_MARKER = "Sq9-marker-never-printed"
AGE_RECIPIENT = "age192m26zk782sryk93krcl735vsjm9h0cnpua2pjfe0uznt3a4p58qtq3cke"
PROD_ADDRESS = "10.40.0.10"

GATEWAY_CONF = """
server {
    listen 8443 ssl;
    http2 on;
    ssl_certificate /etc/nginx/tls/gateway.crt;
    ssl_certificate_key /etc/nginx/tls/gateway.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    access_log /var/log/nginx/access.log;
    location / { proxy_pass http://openemr:80; }
}
server {
    listen 8080;
    return 301 https://$host$request_uri;
}
server {
    listen 127.0.0.1:8081;
    access_log off;
    location = /healthz { return 200; }
}
"""
DATABASE_CNF = """
[mariadb]
require_secure_transport = ON
ssl_cert = /etc/mysql/tls/server.crt
ssl_key = /etc/mysql/tls/server.key
ssl_ca = /etc/mysql/tls/ca.crt
plugin_load_add = server_audit
server_audit_logging = ON
"""


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def days_ago(days: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days)).isoformat()


def hardened_container(service: str, **inputs: Any) -> dict[str, Any]:
    """Container inputs with the whole hardening baseline, camelCase, numbers as floats."""
    props: dict[str, Any] = {
        "name": f"hospital-prod-{service}",
        "image": "sha256:" + "0" * 64,
        "capabilities": {"drops": ["ALL"]},
        "securityOpts": ["no-new-privileges:true"],
        "readOnly": True,
        "tmpfs": {"/tmp": "rw,noexec,nosuid,size=64m"},
        "memory": 1024.0,
        "cpuShares": 1024.0,
        "restart": "unless-stopped",
        "logDriver": "local",
        "logOpts": {"max-size": "50m", "max-file": "10"},
        "healthcheck": {"tests": ["CMD", "true"], "interval": "30s", "retries": 3.0},
        "networksAdvanced": [{"name": "hospital-prod-clinical", "aliases": [service]}],
        "labels": [
            {"label": "hospital.service", "value": service},
            {"label": "hospital.stack", "value": "prod"},
        ],
        "user": "10001:10001",
    }
    props.update(inputs)
    return props


def gateway() -> dict[str, Any]:
    return hardened_container(
        "gateway",
        user="101:101",
        ports=[
            {"internal": 8443.0, "external": 443.0, "ip": PROD_ADDRESS, "protocol": "tcp"},
            {"internal": 8080.0, "external": 80.0, "ip": PROD_ADDRESS, "protocol": "tcp"},
        ],
        uploads=[{"file": "/etc/nginx/conf.d/hospital.conf", "content": GATEWAY_CONF}],
        networksAdvanced=[
            {"name": "hospital-prod-edge", "aliases": ["gateway"]},
            {"name": "hospital-prod-clinical", "aliases": ["gateway"]},
        ],
    )


def database() -> dict[str, Any]:
    return hardened_container(
        "database",
        user="",
        capabilities={"drops": ["ALL"], "adds": ["CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"]},
        envs=[
            "MARIADB_ROOT_PASSWORD_FILE=/run/secrets/root",
            "MARIADB_DATABASE=openemr",
        ],
        uploads=[
            {"file": "/etc/mysql/conf.d/hospital.cnf", "content": DATABASE_CNF},
            {"file": "/run/secrets/root", "content": SECRET_MARKER},
        ],
        networksAdvanced=[{"name": "hospital-prod-data", "aliases": ["mariadb"]}],
        volumes=[{"volumeName": "hospital-prod-database-data", "containerPath": "/var/lib/mysql"}],
    )


def emr() -> dict[str, Any]:
    return hardened_container(
        "emr",
        user="",
        envs=[
            "MYSQL_HOST=mariadb",
            f"MYSQL_ROOT_PASS={SECRET_MARKER}",
            f"MYSQL_PASS={SECRET_MARKER}",
            "OE_USER=admin",
            f"OE_PASS={SECRET_MARKER}",
            "FORCE_DATABASE_SSL_CONNECT=1",
        ],
        uploads=[{"file": "/root/certs/mysql/server/mysql-ca", "content": "-----BEGIN CERT"}],
        networksAdvanced=[
            {"name": "hospital-prod-clinical", "aliases": ["openemr"]},
            {"name": "hospital-prod-data", "aliases": ["openemr"]},
        ],
    )


def backup_job() -> dict[str, Any]:
    return hardened_container(
        "backup",
        envs=[
            "BACKUP_SCHEDULE=0 2 * * *",
            "BACKUP_RPO_HOURS=24",
            f"BACKUP_AGE_RECIPIENTS={AGE_RECIPIENT}",
            "BACKUP_DB_PASSWORD_FILE=/run/secrets/backup",
        ],
        networksAdvanced=[{"name": "hospital-prod-data", "aliases": ["backup"]}],
        volumes=[
            {
                "volumeName": "hospital-prod-database-data",
                "containerPath": "/volumes/database-data",
                "readOnly": True,
            },
            {
                "volumeName": "hospital-prod-pacs-config",
                "containerPath": "/volumes/pacs-config",
                "readOnly": True,
            },
            {"volumeName": "hospital-prod-backup-archive", "containerPath": "/backups"},
        ],
    )


def edr() -> dict[str, Any]:
    return hardened_container(
        "edr",
        envs=[f"VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD={SECRET_MARKER}"],
        ports=[{"internal": 8000.0, "external": 8000.0, "ip": PROD_ADDRESS, "protocol": "tcp"}],
        networksAdvanced=[{"name": "hospital-prod-security", "aliases": ["velociraptor"]}],
    )


def password() -> dict[str, Any]:
    return {
        "length": 32.0,
        "upper": True,
        "lower": True,
        "numeric": True,
        "special": True,
        "minUpper": 1.0,
        "minLower": 1.0,
        "minNumeric": 1.0,
        "minSpecial": 1.0,
        "overrideSpecial": "-_.~+=",
        "keepers": {"rotation": days_ago(10), "account": "database-root"},
    }


def private_key() -> dict[str, Any]:
    return {"algorithm": "ECDSA", "ecdsaCurve": "P384"}


def ca_certificate() -> dict[str, Any]:
    return {
        "isCaCertificate": True,
        "validityPeriodHours": 87600.0,
        "earlyRenewalHours": 720.0,
        "allowedUses": ["cert_signing", "crl_signing"],
        "subject": {"commonName": "Example Hospital CA"},
    }


def leaf_certificate() -> dict[str, Any]:
    return {
        "validityPeriodHours": 8760.0,
        "earlyRenewalHours": 720.0,
        "allowedUses": ["server_auth", "digital_signature", "key_encipherment"],
    }


def remote_image() -> dict[str, Any]:
    return {"name": "mariadb:11.4.8", "keepLocally": True}


def bound_volume() -> dict[str, Any]:
    """The backup destination bound to a dedicated host directory, as `hostPath` makes it."""
    props = volume("backup", "archives", "backup")
    props["driverOpts"] = {"type": "none", "o": "bind", "device": "/srv/hospital/backups"}
    return props


# kind -> (type token, builder)
COMPLIANT = {
    "gateway": (CONTAINER, gateway),
    "database": (CONTAINER, database),
    "emr": (CONTAINER, emr),
    "backup": (CONTAINER, backup_job),
    "edr": (CONTAINER, edr),
    "password": ("random:index/randomPassword:RandomPassword", password),
    "key": ("tls:index/privateKey:PrivateKey", private_key),
    "ca": ("tls:index/selfSignedCert:SelfSignedCert", ca_certificate),
    "leaf": ("tls:index/locallySignedCert:LocallySignedCert", leaf_certificate),
    "image": ("docker:index/remoteImage:RemoteImage", remote_image),
    "volume": (VOLUME, bound_volume),
}


def network(zone: str, subnet: str, internal: bool = False) -> dict[str, Any]:
    return {
        "name": f"hospital-prod-{zone}",
        "driver": "bridge",
        "internal": internal,
        "ipamConfigs": [{"subnet": subnet}],
        "labels": [{"label": "hospital.zone", "value": zone}],
    }


def volume(service: str, purpose: str, data_class: str) -> dict[str, Any]:
    return {
        "name": f"hospital-prod-{service}-{purpose}",
        "driver": "local",
        "labels": [
            {"label": "hospital.service", "value": service},
            {"label": "hospital.data-class", "value": data_class},
        ],
    }


def attestation(item: str, age_days: int = 30) -> dict[str, Any]:
    return {"item": item, "by": "Compliance Office", "date": days_ago(age_days), "evidence": "X-1"}


ATTESTED_ITEMS = (
    "staff-training",
    "restore-test",
    "risk-assessment",
    "third-party-assessment",
    "vpn",
    "physical-security",
)


def file_carrier(service: str, uploads: list[dict[str, Any]], *directories: str) -> dict[str, Any]:
    """A never-started container holding `uploads` in anonymous volumes at `directories`."""
    return {
        "name": f"hospital-prod-{service}-files",
        "image": "sha256:" + "0" * 64,
        "start": False,
        "mustRun": False,
        "networkMode": "none",
        "uploads": uploads,
        "volumes": [{"containerPath": directory} for directory in directories],
        "removeVolumes": True,
        "capabilities": {"drops": ["ALL"]},
        "securityOpts": ["no-new-privileges:true"],
        "labels": [
            {"label": "hospital.service", "value": service},
            {"label": "hospital.stack", "value": "prod"},
            {"label": "hospital.role", "value": "files"},
        ],
    }


def carried(props: dict[str, Any], *directories: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(service, carrier): `props` with its uploads moved into a carrier it mounts read-only."""
    service = next(e["value"] for e in props["labels"] if e["label"] == "hospital.service")
    carrier = file_carrier(service, props.pop("uploads"), *directories)
    props["volumes"] = [*props.get("volumes", []), {"fromContainer": f"{carrier['name']}:ro"}]
    return props, carrier


def compliant_stack() -> list[tuple[str, str, dict[str, Any]]]:
    """(type, name, outputs) of a small compliant stack, the Stack resource first; the gateway
    takes its files from a carrier, the others get their uploads directly."""
    gateway_props, gateway_files = carried(gateway(), "/etc/nginx/conf.d")
    return [
        (STACK, "hospital-prod", {"attestations": [attestation(i) for i in ATTESTED_ITEMS]}),
        (NETWORK, "zones-edge", network("edge", "172.31.0.0/24")),
        (NETWORK, "zones-clinical", network("clinical", "172.31.1.0/24")),
        (NETWORK, "zones-data", network("data", "172.31.2.0/24", internal=True)),
        (NETWORK, "zones-security", network("security", "172.31.3.0/24")),
        (VOLUME, "database-data", volume("database", "data", "phi")),
        (VOLUME, "pacs-config", volume("pacs", "config", "config")),
        (VOLUME, "gateway-logs", volume("gateway", "logs", "logs")),
        (CONTAINER, "gateway-files", gateway_files),
        (CONTAINER, "gateway", gateway_props),
        (CONTAINER, "database", database()),
        (CONTAINER, "emr", emr()),
        (CONTAINER, "backup", backup_job()),
        (CONTAINER, "edr", edr()),
    ]


@dataclass
class Outcome:
    """What one rule run produced: violation messages and the engine's unknown diagnostic."""

    messages: list[str] = field(default_factory=list)
    unknown: str | None = None
    not_applicable: str | None = None


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def _config(rule: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    return PackConfig({rule: dict(overrides or {})}).properties(RULES[rule])


def run_resource_rule(
    rule: str,
    resource_type: str,
    props: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    name: str = "subject",
) -> Outcome:
    """Call one resource rule the way the analyzer's Analyze does; a rule that reads files
    runs stack-wide (AnalyzeStack), here over a stack of this one resource."""
    if is_stack_rule(rule):
        return run_stack_rule(rule, [(resource_type, name, dict(props))], config)
    outcome = Outcome()
    args = ResourceValidationArgs(
        resource_type,
        engine_props(props),
        f"urn:pulumi:prod::hospital::{resource_type}::{name}",
        name,
        _options(),
        None,
        _config(rule, config),
    )
    try:
        RULES[rule].validate(args, lambda message, urn=None: outcome.messages.append(message))
    except UnknownValueError as error:
        outcome.unknown = error.message
    except _NotApplicableError as error:
        outcome.not_applicable = error.reason
    return outcome


def run_stack_rule(
    rule: str,
    resources: list[tuple[str, str, dict[str, Any]]],
    config: Mapping[str, Any] | None = None,
) -> Outcome:
    """Call one stack rule the way the analyzer's AnalyzeStack does."""
    outcome = Outcome()
    view = [
        PolicyResource(
            kind,
            engine_props(outputs),
            f"urn:pulumi:prod::hospital::{kind}::{name}",
            name,
            _options(),
            None,
            None,
            [],
            {},
        )
        for kind, name, outputs in resources
    ]
    args = StackValidationArgs(view, _config(rule, config))
    try:
        RULES[rule].validate(args, lambda message, urn=None: outcome.messages.append(message))
    except UnknownValueError as error:
        outcome.unknown = error.message
    except _NotApplicableError as error:
        outcome.not_applicable = error.reason
    return outcome


def is_stack_rule(rule: str) -> bool:
    return isinstance(RULES[rule], StackValidationPolicy)

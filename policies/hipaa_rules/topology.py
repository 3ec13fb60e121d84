"""Rules only the whole stack shows: trust-zone separation, distinct subnets, EDR presence.

Stack rules read outputs (state) of every resource, as the engine hands them over.
"""

import ipaddress

from pulumi_policy import Severity

from .framework import CONTAINER, NETWORK, schema, setting, stack_policy
from .inputs import (
    ZONE_LABEL,
    every_item,
    image_references,
    known_items,
    label,
    mapping,
    network_names,
    sequence,
    service,
)

ACCESS_CONTROL = "164.312(a)(1)"
TRANSMISSION = "164.312(e)(1)"
AUDIT = "164.312(b)"
ACTIVITY_REVIEW = "164.308(a)(1)(ii)(D)"

ZONES = ("edge", "clinical", "data", "security")


def network_zones(resources) -> dict[str, str]:
    """Docker network name -> trust zone, from the `hospital.zone` label."""
    zones = {}
    for resource in resources:
        if resource.resource_type == NETWORK:
            zones[str(resource.props.get("name", resource.name))] = label(
                resource.props, ZONE_LABEL
            )
    return zones


def network_subnets(props) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The readable subnets of a network's `ipamConfigs`."""
    subnets = []
    for ipam in known_items(sequence(props, "ipamConfigs")):
        try:
            subnets.append(ipaddress.ip_network(str(ipam.get("subnet")), strict=False))
        except ValueError:
            continue
    return subnets


def containers(resources):
    return [resource for resource in resources if resource.resource_type == CONTAINER]


def validate_zone_separation(args, report_violation):
    zones = network_zones(args.resources)
    for resource in args.resources:
        if (
            resource.resource_type == NETWORK
            and zones.get(str(resource.props.get("name", resource.name))) == "data"
            and not resource.props.get("internal", False)
        ):
            report_violation(
                f"Data-zone network '{resource.name}' routes off the host; set `internal=True`.",
                resource.urn,
            )
    for container in containers(args.resources):
        joined = {zones.get(name) for name in network_names(container.props)}
        if {"edge", "data"} <= joined:
            report_violation(
                f"Container '{container.name}' joins both the edge and the data zone, a direct "
                "path from the outside to the database; move it to the clinical zone.",
                container.urn,
            )


def validate_zone_subnets(args, report_violation):
    seen: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for resource in args.resources:
        if resource.resource_type != NETWORK:
            continue
        zone = label(resource.props, ZONE_LABEL)
        if zone not in ZONES:
            report_violation(
                f"Network '{resource.name}' carries no known `{ZONE_LABEL}` label; label it "
                f"with one of {', '.join(ZONES)}.",
                resource.urn,
            )
        for subnet in network_subnets(resource.props):
            for other, other_subnet in seen:
                if subnet.version == other_subnet.version and subnet.overlaps(other_subnet):
                    report_violation(
                        f"Network '{resource.name}' subnet {subnet} overlaps '{other}' "
                        f"({other_subnet}); give every zone its own range.",
                        resource.urn,
                    )
            seen.append((resource.name, subnet))


EDR_SCHEMA = schema(
    edrServices={
        "type": "array",
        "items": {"type": "string"},
        "default": ["edr"],
        "description": "Service labels of the intrusion detection server.",
    }
)


def validate_intrusion_detection(args, report_violation):
    wanted = setting(args, EDR_SCHEMA, "edrServices")
    images = image_references(args.resources)
    servers = [c for c in containers(args.resources) if service(c.props, images) in wanted]
    if not servers:
        report_violation(
            "The stack runs no intrusion detection server; deploy the EDR service "
            "(Velociraptor) in the security zone."
        )
        return
    zones = network_zones(args.resources)
    for server in servers:
        tests = every_item(sequence(mapping(server.props, "healthcheck"), "tests"))
        if not tests:
            report_violation(
                f"EDR server '{server.name}' has no health check, so a dead sensor goes "
                "unnoticed; add one.",
                server.urn,
            )
        joined = network_names(server.props, complete=True)
        if "security" not in {zones.get(name) for name in joined}:
            report_violation(
                f"EDR server '{server.name}' is outside the security zone; attach it there.",
                server.urn,
            )


POLICIES = [
    stack_policy(
        name="stack-disallow-edge-to-data-path",
        description="No container bridges the edge and data zones, and the data zone is internal.",
        validate=validate_zone_separation,
        severity=Severity.CRITICAL,
        citations=[ACCESS_CONTROL, TRANSMISSION],
        remediation="Keep the gateway in edge+clinical, the database in data, and set the data "
        "network `internal=True`.",
    ),
    stack_policy(
        name="stack-disallow-overlapping-zones",
        description="Every trust-zone network is labelled and has its own subnet.",
        validate=validate_zone_subnets,
        severity=Severity.MEDIUM,
        citations=[ACCESS_CONTROL],
        remediation="Give each zone in `hospital:network` a distinct subnet.",
    ),
    stack_policy(
        name="stack-missing-intrusion-detection",
        description="An EDR server runs in the security zone with a health check.",
        validate=validate_intrusion_detection,
        severity=Severity.HIGH,
        citations=[AUDIT, ACTIVITY_REVIEW],
        remediation="Deploy the Velociraptor server in the security zone.",
        config_schema=EDR_SCHEMA,
    ),
]

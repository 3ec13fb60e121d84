"""How a rule is declared: HIPAA citations, CIS tags, config defaults and resource-type scoping.

Rules stay plain `validate(args, report_violation)` functions; this module wraps them into
pulumi_policy objects so the citation suffix and the type filter are written once.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyComplianceFramework,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

HIPAA_REFERENCE = "https://www.ecfr.gov/current/title-45/subtitle-A/subchapter-C/part-164/subpart-C"

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
BUILT_IMAGE = "docker:index/image:Image"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"
STACK = "pulumi:pulumi:Stack"

Validation = Callable[[Any, Callable[..., None]], None]


def hipaa(*citations: str) -> PolicyComplianceFramework:
    """The HIPAA Security Rule framework entry naming the sections a rule supports."""
    return PolicyComplianceFramework(
        name="HIPAA",
        version="45 CFR Part 164 Subpart C",
        reference=HIPAA_REFERENCE,
        specification=", ".join(citations),
    )


def citation_suffix(citations: Sequence[str], cis: Sequence[str]) -> str:
    """The trailer every message ends with, e.g. `(HIPAA 164.312(b); CIS 5.27)`."""
    parts = ["HIPAA " + ", ".join(citations)]
    if cis:
        parts.append("CIS Docker " + ", ".join(cis))
    return "(" + "; ".join(parts) + ")"


def setting(args: Any, schema: PolicyConfigSchema | None, key: str) -> Any:
    """A policy config value; the schema default when the pack config does not set it.

    The CLI fills defaults before calling a policy; a direct call (tests) gets an empty config,
    so the default is read from the same schema the CLI would use.
    """
    configured = args.get_config() or {}
    if key in configured:
        return configured[key]
    return schema.properties[key]["default"] if schema else None


def is_file_carrier(props: Mapping[str, Any]) -> bool:
    """A container that is created and never started: it only holds files for another one."""
    return props.get("start") is False


def resource_policy(
    *,
    name: str,
    description: str,
    validate: Validation,
    resource_types: Sequence[str],
    severity: Severity,
    citations: Sequence[str],
    remediation: str,
    cis: Sequence[str] = (),
    config_schema: PolicyConfigSchema | None = None,
    tags: Sequence[str] = (),
    running_only: bool = False,
    reads_files: bool = False,
) -> ResourceValidationPolicy | StackValidationPolicy:
    """A resource rule that runs `validate` only on `resource_types`, citing its sources.

    `running_only=True` leaves out file carriers (containers never started): what the rule
    judges (health, limits, restarts, logs, users) belongs to a running container.
    `reads_files=True` is for a rule that reads a container's uploaded files: it sees a
    container's own uploads and those of the file carriers it takes volumes from, so it runs
    over the whole stack (a resource rule sees one resource); file carriers are left out.
    """
    suffix = citation_suffix(citations, cis)
    wanted = frozenset(resource_types)
    if reads_files:
        return _files_policy(
            name=name,
            description=description,
            validate=validate,
            wanted=wanted,
            severity=severity,
            citations=citations,
            remediation=remediation,
            cis=cis,
            config_schema=config_schema,
            tags=tags,
        )

    def scoped(args: ResourceValidationArgs, report_violation: Callable[..., None]) -> None:
        if args.resource_type not in wanted:
            return
        if running_only and args.resource_type == CONTAINER and is_file_carrier(args.props):
            args.not_applicable("a file carrier: never started, it only holds files")
        validate(args, _cited(report_violation, suffix))

    policy = ResourceValidationPolicy(
        name=name,
        description=description,
        validate=scoped,
        config_schema=config_schema,
        severity=severity,
        framework=hipaa(*citations),
        tags=_tags(cis, tags),
        remediation_steps=remediation,
    )
    # Lets an offline runner skip calls that `scoped` would return from at once.
    policy.resource_types = wanted
    return policy


def stack_policy(
    *,
    name: str,
    description: str,
    validate: Validation,
    severity: Severity,
    citations: Sequence[str],
    remediation: str,
    cis: Sequence[str] = (),
    config_schema: PolicyConfigSchema | None = None,
    tags: Sequence[str] = (),
    cites_per_message: bool = False,
) -> StackValidationPolicy:
    """A stack rule over every resource's outputs, citing its sources.

    `cites_per_message=True` leaves the citation to each message (a rule spanning sections).
    """
    suffix = citation_suffix(citations, cis)

    def cited(args: StackValidationArgs, report_violation: Callable[..., None]) -> None:
        validate(args, report_violation if cites_per_message else _cited(report_violation, suffix))

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=cited,
        config_schema=config_schema,
        severity=severity,
        framework=hipaa(*citations),
        tags=_tags(cis, tags),
        remediation_steps=remediation,
    )


class _Skipped(Exception):
    """One resource of a stack-wide run of a resource rule is not applicable."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason)
        self.reason = reason


class ResourceView:
    """What a resource rule reads (`props`, `name`, `urn`, `resource_type`, `get_config`,
    `not_applicable`), for one resource of a stack-wide run."""

    def __init__(self, resource: Any, props: Mapping[str, Any], config: Callable[[], Any]):
        self.resource_type = resource.resource_type
        self.props = props
        self.urn = resource.urn
        self.name = resource.name
        self.get_config = config

    def not_applicable(self, reason: str | None = None) -> None:
        raise _Skipped(reason)


def carrier_name(entry: str) -> str:
    """The container named by a `volumes_from` entry (`name`, `name:ro`, `name:rw`)."""
    name, _, mode = entry.rpartition(":")
    return name if mode in ("ro", "rw") else entry


def volumes_from(props: Mapping[str, Any]) -> list[str]:
    """The known `fromContainer` entries of a container's `volumes`."""
    entries = []
    volumes = props.get("volumes") or ()
    for index in range(len(volumes)):
        try:
            source = volumes[index].get("fromContainer")
        except UnknownValueError:
            continue
        if source:
            entries.append(str(source))
    return entries


def carriers_by_name(resources: Sequence[Any]) -> dict[str, Any]:
    """The stack's file carriers by container name; unknown names are left out."""
    found = {}
    for resource in resources:
        if resource.resource_type != CONTAINER or not is_file_carrier(resource.props):
            continue
        try:
            found[str(resource.props["name"])] = resource
        except (KeyError, UnknownValueError):
            continue
    return found


class _Chained(Sequence):
    """Two sequences read as one, element by element, so unknown elements raise only when read."""

    def __init__(self, *parts: Sequence[Any]) -> None:
        self._parts = parts

    def __len__(self) -> int:
        return sum(len(part) for part in self._parts)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        for part in self._parts:
            if index < len(part):
                return part[index]
            index -= len(part)
        raise IndexError(index)


class _WithUploads(Mapping):
    """A container's props with `uploads` extended by the files its carriers hold."""

    def __init__(self, props: Mapping[str, Any], uploads: Sequence[Any]) -> None:
        self._props = props
        self._uploads = uploads

    def __getitem__(self, key: str) -> Any:
        return self._uploads if key == "uploads" else self._props[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._props
        if "uploads" not in self._props:
            yield "uploads"

    def __len__(self) -> int:
        return len(self._props) + (0 if "uploads" in self._props else 1)


def with_carried_files(props: Mapping[str, Any], carriers: Mapping[str, Any]) -> Mapping[str, Any]:
    """`props` whose `uploads` also hold the uploads of every carrier it takes volumes from:
    the files the running container reads. A reference to no carrier of the stack adds nothing
    (`container-enforce-read-only-file-carriers` reports it)."""
    parts = [props.get("uploads") or ()]
    for entry in volumes_from(props):
        carrier = carriers.get(carrier_name(entry))
        if carrier is not None:
            parts.append(carrier.props.get("uploads") or ())
    if len(parts) == 1:
        return props
    return _WithUploads(props, _Chained(*parts))


def _files_policy(
    *,
    name: str,
    description: str,
    validate: Validation,
    wanted: frozenset[str],
    severity: Severity,
    citations: Sequence[str],
    remediation: str,
    cis: Sequence[str],
    config_schema: PolicyConfigSchema | None,
    tags: Sequence[str],
) -> StackValidationPolicy:
    """A resource rule run over the stack, each container seeing its carriers' files.

    Resources keep the semantics they have under a resource rule: one that is not applicable
    is skipped, one whose inputs are unknown yet is skipped and, after the others were judged,
    the first unknown is raised as the engine expects. When no resource was judged at all,
    the rule is not applicable to the stack, with the reasons given.
    """

    def run(args: StackValidationArgs, report_violation: Callable[..., None]) -> None:
        carriers = carriers_by_name(args.resources)
        pending: UnknownValueError | None = None
        judged, reasons = 0, []
        for resource in args.resources:
            if resource.resource_type not in wanted:
                continue

            def report(message: str, urn: str | None = None, at: str = resource.urn) -> None:
                report_violation(message, urn or at)

            try:
                props = resource.props
                if resource.resource_type == CONTAINER:
                    if is_file_carrier(props):
                        continue
                    props = with_carried_files(props, carriers)
                validate(ResourceView(resource, props, args.get_config), report)
                judged += 1
            except _Skipped as skipped:
                reasons.append(f"{resource.name}: {skipped.reason}")
            except UnknownValueError as error:
                judged += 1
                pending = pending or error
        if pending is not None:
            raise pending
        if not judged:
            args.not_applicable("; ".join(reasons) or "no resource of its types")

    policy = stack_policy(
        name=name,
        description=description,
        validate=run,
        severity=severity,
        citations=citations,
        remediation=remediation,
        cis=cis,
        config_schema=config_schema,
        tags=tags,
    )
    policy.resource_types = wanted
    return policy


def schema(**properties: Mapping[str, Any]) -> PolicyConfigSchema:
    """A config schema from keyword properties (each with a default)."""
    return PolicyConfigSchema(properties={key: dict(value) for key, value in properties.items()})


def _cited(report_violation: Callable[..., None], suffix: str) -> Callable[..., None]:
    def report(message: str, urn: str | None = None) -> None:
        report_violation(f"{message} {suffix}", urn)

    return report


def _tags(cis: Sequence[str], extra: Sequence[str]) -> list[str]:
    return ["hipaa", *(f"cis-docker-{number}" for number in cis), *extra]

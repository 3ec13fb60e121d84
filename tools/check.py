"""`python -m tools check`: the HIPAA policy pack over an offline preview, as CrossGuard runs it.

Config defaults are filled and validated against each rule's schema, props pass through the
runtime's unknown-checking proxy, resource rules see inputs and stack rules see outputs.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from components.compliance import PACK_CONFIG_DIR, REPO_ROOT, pack_config_for
from policies.hipaa_rules import CHECKLIST, POLICIES
from policies.hipaa_rules.attestations import ATTESTATION_SCHEMA, assess, recorded_attestations
from policies.hipaa_rules.framework import STACK
from tools.commandline import add_stack_arguments
from tools.preview import run_program
from tools.recording import RecordedResource, Recording

PACK_NAME = "hospital-hipaa"
# How rules word a not-applicable reason for a subject the pack config excepts by name.
REVIEWED_EXCEPTION = "reviewed exception"
PACK_VERSION = str(
    yaml.safe_load((REPO_ROOT / "policies" / "PulumiPolicy.yaml").read_text())["version"]
)
NAME = "check"
HELP = "run the HIPAA policy pack over the offline preview; exit 1 on a mandatory violation"
LEVELS = {level.value: level for level in EnforcementLevel}


class PackConfigError(Exception):
    """The pack config names an unknown rule, an unknown level or breaks a rule's schema."""


@dataclass(frozen=True)
class Violation:
    """One reported violation: which rule, at which level, on which resource, and why."""

    policy: str
    level: str
    severity: str
    message: str
    resource: str
    urn: str
    citations: str
    cis: tuple[str, ...]


@dataclass(frozen=True)
class Diagnostic:
    """A rule that could not run on one resource (an unknown value during preview)."""

    policy: str
    resource: str
    message: str


@dataclass
class CheckResult:
    """Everything one check produced, ready to print, serialize or turn into a report."""

    stack: str
    pack_config: str
    violations: list[Violation] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    not_applicable: list[tuple[str, str]] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    attestations: dict[str, str] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    overrides: list[tuple[str, str, Any]] = field(default_factory=list)
    resources: int = 0
    seconds: float = 0.0

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.level == EnforcementLevel.MANDATORY.value]

    def by_policy(self) -> dict[str, list[Violation]]:
        grouped: dict[str, list[Violation]] = {}
        for violation in self.violations:
            grouped.setdefault(violation.policy, []).append(violation)
        return grouped


class PackConfig:
    """A `--policy-pack-config` file read the way the Pulumi CLI reads it.

    `all` sets every rule's level; a rule's entry is a level string or an object with an
    optional `enforcementLevel` and its properties. Properties get the schema's defaults and
    are validated against the schema before any rule runs.
    """

    def __init__(self, document: Mapping[str, Any], policies: Sequence[Policy] = POLICIES):
        self._policies = {policy.name: policy for policy in policies}
        unknown = sorted(set(document) - set(self._policies) - {"all"})
        if unknown:
            raise PackConfigError(f"pack config names unknown rule(s): {', '.join(unknown)}")
        self._default = _level(document.get("all", EnforcementLevel.ADVISORY.value), "all")
        self._levels: dict[str, EnforcementLevel] = {}
        self._properties: dict[str, dict[str, Any]] = {}
        for name, policy in self._policies.items():
            entry = document.get(name, {})
            if isinstance(entry, str):
                entry = {"enforcementLevel": entry}
            if "enforcementLevel" in entry:
                self._levels[name] = _level(entry["enforcementLevel"], name)
            given = {k: v for k, v in entry.items() if k != "enforcementLevel"}
            self._properties[name] = _validated_properties(policy, given)
        # The CLI sends properties through a protobuf Struct: every number arrives as a float.
        self._wire = {name: _through_struct(props) for name, props in self._properties.items()}

    @classmethod
    def load(cls, path: Path, policies: Sequence[Policy] = POLICIES) -> PackConfig:
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise PackConfigError(f"{path}: {error}") from error
        if not isinstance(document, dict):
            raise PackConfigError(f"{path}: the pack config must be a JSON object")
        return cls(document, policies)

    def overrides(self) -> list[tuple[str, str, Any]]:
        """(rule, setting, value) for every setting that differs from its schema default."""
        changed = []
        for name, properties in self._properties.items():
            schema = self._policies[name].config_schema
            for key, value in properties.items():
                if schema is None or value != schema.properties[key].get("default"):
                    changed.append((name, key, value))
        return changed

    def level(self, policy: Policy) -> EnforcementLevel:
        if policy.name in self._levels:
            return self._levels[policy.name]
        return self._default

    def properties(self, policy: Policy) -> dict[str, Any]:
        """The rule's config as the analyzer hands it over: a fresh copy, numbers as floats."""
        return dict(self._wire[policy.name])


def _through_struct(values: Mapping[str, Any]) -> dict[str, Any]:
    message = struct_pb2.Struct()
    message.update(dict(values))
    return json_format.MessageToDict(message)


def _level(value: Any, where: str) -> EnforcementLevel:
    if value not in LEVELS:
        raise PackConfigError(f"{where}: unknown enforcement level {value!r}")
    return LEVELS[value]


def _validated_properties(policy: Policy, given: Mapping[str, Any]) -> dict[str, Any]:
    schema = policy.config_schema
    if schema is None:
        if given:
            raise PackConfigError(f"{policy.name}: takes no properties, got {sorted(given)}")
        return {}
    filled = {
        key: copy.deepcopy(spec["default"])
        for key, spec in schema.properties.items()
        if "default" in spec
    }
    filled.update(given)
    document = {
        "type": "object",
        "properties": schema.properties,
        "required": schema.required or [],
        "additionalProperties": False,
    }
    errors = sorted(
        jsonschema.Draft7Validator(document, format_checker=jsonschema.FormatChecker()).iter_errors(
            filled
        ),
        key=lambda error: list(error.path),
    )
    if errors:
        where = ".".join(str(part) for part in errors[0].path) or "(root)"
        raise PackConfigError(f"{policy.name}.{where}: {errors[0].message}")
    return filled


def engine_props(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """Props as the analyzer builds them: deserialized, then wrapped in the unknown proxy.

    The proxy copies every dict and list it wraps, so each call gets props of its own.
    """
    return unknown_checking_proxy(deserialize_properties(dict(values)))


def _options(resource: RecordedResource | None) -> PolicyResourceOptions:
    options = resource.options if resource else {}
    return PolicyResourceOptions(
        bool(options.get("protect", False)),
        list(options.get("ignoreChanges", [])),
        options.get("deleteBeforeReplace"),
        list(options.get("aliasURNs", [])),
        PolicyCustomTimeouts(0, 0, 0),
        list(options.get("additionalSecretOutputs", [])),
        resource.parent if resource else None,
    )


def resource_args(
    resource: RecordedResource, config: Mapping[str, Any] | None = None
) -> ResourceValidationArgs:
    """The arguments a resource rule receives for one recorded resource (its inputs)."""
    return ResourceValidationArgs(
        resource.type,
        engine_props(resource.inputs),
        resource.urn,
        resource.name,
        _options(resource),
        None,
        config,
    )


def stack_urn(recording: Recording) -> str:
    project, stack = recording.project, recording.stack
    return f"urn:pulumi:{stack}::{project}::{STACK}::{project}-{stack}"


def policy_resources(recording: Recording) -> list[PolicyResource]:
    """Every resource's outputs as stack rules see them, the Stack resource first.

    The Stack resource's outputs are the program's exports.
    """
    stack = PolicyResource(
        STACK,
        engine_props({name: export.value for name, export in recording.exports.items()}),
        stack_urn(recording),
        f"{recording.project}-{recording.stack}",
        _options(None),
        None,
        None,
        [],
        {},
    )
    by_urn: dict[str, PolicyResource] = {stack.urn: stack}
    for resource in recording.resources:
        by_urn[resource.urn] = PolicyResource(
            resource.type,
            engine_props(resource.outputs),
            resource.urn,
            resource.name,
            _options(resource),
            None,
            None,
            [],
            {},
        )
    for resource in recording.resources:
        target = by_urn[resource.urn]
        target.parent = by_urn.get(resource.parent or stack.urn)
        target.dependencies = [by_urn[urn] for urn in resource.dependencies if urn in by_urn]
        target.property_dependencies = {
            key: [by_urn[urn] for urn in urns if urn in by_urn]
            for key, urns in resource.property_dependencies.items()
        }
    return list(by_urn.values())


def _citations(policy: Policy) -> tuple[str, tuple[str, ...]]:
    specification = policy.framework.specification if policy.framework else ""
    cis = tuple(tag.removeprefix("cis-docker-") for tag in policy.tags or [] if "cis" in tag)
    return specification or "", cis


def _reporter(
    result: CheckResult, policy: Policy, level: EnforcementLevel, resource: str, urn: str
) -> Callable[..., None]:
    citations, cis = _citations(policy)
    severity = policy.severity.value if policy.severity else "unspecified"

    def report_violation(message: str, violating_urn: str | None = None) -> None:
        # A stack rule that names the violating resource is reported against that resource.
        named = violating_urn.rsplit("::", 1)[-1] if violating_urn else resource
        result.violations.append(
            Violation(
                policy.name,
                level.value,
                severity,
                message,
                named,
                violating_urn or urn,
                citations,
                cis,
            )
        )

    return report_violation


def _run_one(
    result: CheckResult,
    policy: Policy,
    args: Any,
    report: Callable[..., None],
    resource: str,
) -> None:
    """One validate call with the engine's handling of unknowns and not-applicable.

    A call that neither raised not-applicable nor waited on an unknown counts as applied.
    """
    try:
        policy.validate(args, report)
        result.applied[policy.name] = result.applied.get(policy.name, 0) + 1
    except UnknownValueError as error:
        result.diagnostics.append(
            Diagnostic(
                policy.name,
                resource,
                f"can't run policy '{policy.name}' from policy pack "
                f"'{PACK_NAME}@v{PACK_VERSION}' during preview: {error.message}",
            )
        )
    except _NotApplicableError as error:
        result.not_applicable.append((policy.name, error.reason or ""))


def evaluate(
    recording: Recording,
    pack_config: PackConfig,
    *,
    policies: Sequence[Policy] = POLICIES,
    config_name: str = "",
) -> CheckResult:
    """Run every enabled rule over one recording and collect what they report."""
    started = time.perf_counter()
    result = CheckResult(recording.stack, config_name, resources=len(recording.resources))
    active: list[tuple[Policy, EnforcementLevel]] = []
    for policy in policies:
        level = pack_config.level(policy)
        if level == EnforcementLevel.DISABLED:
            result.disabled.append(policy.name)
            continue
        # A remediation cannot run offline; like the engine, report its violations as mandatory.
        active.append((policy, EnforcementLevel.MANDATORY if level.value == "remediate" else level))
        result.evaluated.append(policy.name)
        result.levels[policy.name] = active[-1][1].value
    resource_rules = [(p, lv) for p, lv in active if isinstance(p, ResourceValidationPolicy)]
    stack_rules = [(p, lv) for p, lv in active if isinstance(p, StackValidationPolicy)]

    # Analyze: one call per resource, every resource rule in turn.
    for resource in recording.resources:
        inputs = deserialize_properties(dict(resource.inputs))
        options = _options(resource)
        for policy, level in resource_rules:
            if resource.type not in getattr(policy, "resource_types", (resource.type,)):
                continue  # the rule ignores this type; skipping it changes no verdict
            args = ResourceValidationArgs(
                resource.type,
                unknown_checking_proxy(inputs),
                resource.urn,
                resource.name,
                options,
                None,
                pack_config.properties(policy),
            )
            report = _reporter(result, policy, level, resource.name, resource.urn)
            _run_one(result, policy, args, report, resource.name)

    # AnalyzeStack: every stack rule over the outputs of every resource.
    stack_view = policy_resources(recording)
    for policy, level in stack_rules:
        args = StackValidationArgs(stack_view, pack_config.properties(policy))
        report = _reporter(result, policy, level, "(stack)", "")
        _run_one(result, policy, args, report, "(stack)")
    result.overrides = pack_config.overrides()
    result.attestations = _attestation_status(stack_view, pack_config, policies)
    result.seconds = time.perf_counter() - started
    return result


def _attestation_status(
    stack_view: list[PolicyResource], pack_config: PackConfig, policies: Sequence[Policy]
) -> dict[str, str]:
    rule = next(p for p in policies if p.name == "stack-missing-attestations")
    args = StackValidationArgs(stack_view, pack_config.properties(rule))
    config = args.get_config()
    defaults = ATTESTATION_SCHEMA.properties
    try:
        entries = recorded_attestations(args)
    except UnknownValueError:
        return {}
    return assess(
        entries,
        config.get("maximumAgeDays", defaults["maximumAgeDays"]["default"]),
        config.get("itemMaximumAgeDays", defaults["itemMaximumAgeDays"]["default"]),
        datetime.now(UTC).date(),
    )


def checklist_rows(result: CheckResult) -> list[dict[str, Any]]:
    """The compliance matrix: checklist item -> rules -> status."""
    violated = set(result.by_policy())
    rows = []
    for entry in CHECKLIST:
        rule_states = []
        for rule in entry.rules:
            if rule in result.disabled or rule not in result.evaluated:
                rule_states.append((rule, "not evaluated"))
            elif rule in violated:
                rule_states.append((rule, "violated"))
            else:
                rule_states.append((rule, _unviolated_state(result, rule)))
        attested = [(item, result.attestations.get(item, "missing")) for item in entry.attestations]
        rows.append(
            {
                "item": entry.item,
                "rules": rule_states,
                "attestations": attested,
                "status": _row_status(rule_states, attested),
                "note": entry.note,
            }
        )
    return rows


def _unviolated_state(result: CheckResult, rule: str) -> str:
    """A rule with no violation: `reviewed exceptions` when the pack config exempted any of its
    subjects (whether or not it judged others), `nothing to check` when it judged nothing,
    else `passing`."""
    reasons = [reason for name, reason in result.not_applicable if name == rule]
    if any(REVIEWED_EXCEPTION in reason for reason in reasons):
        return "reviewed exceptions"
    if not result.applied.get(rule):
        return "nothing to check"
    return "passing"


def _row_status(rules: list[tuple[str, str]], attested: list[tuple[str, str]]) -> str:
    if any(state == "violated" for _, state in rules):
        return "violated"
    if any(state != "attested" for _, state in attested):
        return "missing"
    if any(state == "nothing to check" for _, state in rules):
        return "missing"
    if rules and all(state == "passing" for _, state in rules):
        return "enforced and passing" + (" + attested" if attested else "")
    if rules and all(state in ("passing", "reviewed exceptions") for _, state in rules):
        return "enforced, with reviewed exceptions" + (" + attested" if attested else "")
    if attested:
        return "attested"
    return "missing"


def render_text(result: CheckResult) -> str:
    lines = [
        f"policy check of stack '{result.stack}' ({result.pack_config}): "
        f"{len(result.evaluated)} rules over {result.resources} resources "
        f"in {result.seconds * 1000:.0f} ms",
    ]
    for name, violations in sorted(result.by_policy().items()):
        first = violations[0]
        cis = f"; CIS Docker {', '.join(first.cis)}" if first.cis else ""
        lines.append(f"\n[{first.level}] {name} ({first.severity}) — HIPAA {first.citations}{cis}")
        lines.extend(f"  - {violation.message}" for violation in violations)
    for diagnostic in result.diagnostics:
        lines.append(f"\n[advisory] {diagnostic.resource}: {diagnostic.message}")
    mandatory, total = len(result.mandatory), len(result.violations)
    lines.append(
        f"\n{total} violation(s), {mandatory} mandatory, {total - mandatory} advisory; "
        f"{len(result.diagnostics)} rule run(s) waiting on unknown values"
    )
    return "\n".join(lines)


def render_json(result: CheckResult) -> str:
    document = {
        "stack": result.stack,
        "packConfig": result.pack_config,
        "evaluated": result.evaluated,
        "disabled": result.disabled,
        "violations": [asdict(violation) for violation in result.violations],
        "diagnostics": [asdict(diagnostic) for diagnostic in result.diagnostics],
        "attestations": result.attestations,
        "checklist": checklist_rows(result),
        "mandatoryViolations": len(result.mandatory),
        "seconds": round(result.seconds, 4),
    }
    return json.dumps(document, indent=2, default=list)


def render_report(result: CheckResult) -> str:
    """A Markdown compliance matrix for auditors."""
    lines = [
        f"# HIPAA compliance matrix — stack `{result.stack}`",
        "",
        f"Policy pack `{PACK_NAME}` with `{result.pack_config}`: {len(result.evaluated)} rules, "
        f"{len(result.violations)} violation(s) ({len(result.mandatory)} mandatory). Attested "
        "items are organisational controls signed off in `hospital:attestations`; they are "
        "never counted as enforced.",
        "",
        "| Checklist item | Rules | Attestations | Status |",
        "|---|---|---|---|",
    ]
    for row in checklist_rows(result):
        rules = "<br>".join(f"`{rule}` ({state})" for rule, state in row["rules"]) or "—"
        attested = "<br>".join(f"{item} ({state})" for item, state in row["attestations"]) or "—"
        status = row["status"] + (f" — {row['note']}" if row["note"] else "")
        lines.append(f"| {row['item']} | {rules} | {attested} | {status} |")
    lines += ["", "## Pack settings that differ from the rule defaults", ""]
    lines += [
        f"- `{rule}`: `{key}` = `{json.dumps(value)}`" for rule, key, value in result.overrides
    ]
    if not result.overrides:
        lines.append("- none")
    lines += [
        "",
        "## Rules",
        "",
        "| Rule | Level | HIPAA | CIS | Result |",
        "|---|---|---|---|---|",
    ]
    grouped = result.by_policy()
    for policy in POLICIES:
        citations, cis = _citations(policy)
        if policy.name in result.disabled:
            outcome = "disabled"
        elif policy.name in grouped:
            outcome = f"{len(grouped[policy.name])} violation(s)"
        else:
            state = _unviolated_state(result, policy.name)
            outcome = "pass" if state == "passing" else state
        level = result.levels.get(policy.name, "disabled")
        lines.append(
            f"| `{policy.name}` | {level} | {citations} | {', '.join(cis) or '—'} | {outcome} |"
        )
    return "\n".join(lines) + "\n"


def run_check(
    stack: str,
    stack_file: Path | None = None,
    pack_config_file: Path | None = None,
    **preview_options: Any,
) -> CheckResult:
    """Preview `stack` offline and evaluate the pack with `pack_config_file`, else the stack's
    own pack config, else its environment's (`stack_pack_config`).

    :raises PackConfigError: the pack config is invalid (a given one before the program runs).
    :raises PreviewFailed: the program failed, so no rule could run.
    """
    pack_config = PackConfig.load(pack_config_file) if pack_config_file else None
    recording = run_program(stack, stack_file, **preview_options)
    config_path = pack_config_file or stack_pack_config(recording)
    pack_config = pack_config or PackConfig.load(config_path)
    return evaluate(recording, pack_config, config_name=_display(config_path))


def stack_pack_config(recording: Recording) -> Path:
    """The pack config that judges a recorded stack: `policies/config/<stack>.json` when it
    exists, else the one of the environment the stack exports (dev.json, prod.json)."""
    environment = recording.exports.get("environment")
    name = environment.value if environment else recording.stack
    return pack_config_for(recording.stack, name, PACK_CONFIG_DIR)


def _display(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `check` subcommand's options."""
    add_stack_arguments(parser)
    parser.add_argument(
        "--pack-config",
        type=Path,
        help="pack config instead of policies/config/<stack>.json, else <environment>.json",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--report",
        nargs="?",
        const=Path("build/compliance-<stack>.md"),
        type=Path,
        help="write the Markdown compliance matrix (default build/compliance-<stack>.md)",
    )


def run(args: argparse.Namespace) -> int:
    """The gate: 0 when no mandatory rule is violated, 1 otherwise, 2 on a bad pack config."""
    try:
        result = run_check(
            args.stack,
            args.stack_file,
            args.pack_config,
            project_dir=args.project_dir,
            secrets_file=args.secrets,
            seed=args.seed,
            unknown_computed=args.first_preview,
        )
    except PackConfigError as error:
        print(f"error: bad pack config: {error}", file=sys.stderr)
        return 2
    print(render_json(result) if args.format == "json" else render_text(result))
    if args.report:
        target = Path(str(args.report).replace("<stack>", args.stack))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_report(result))
        print(f"compliance matrix written to {target}", file=sys.stderr)
    return 1 if result.mandatory else 0

"""The offline gate reports exactly what the pack's own analyzer reports when the engine calls it:
the recording goes through pulumi_policy's gRPC servicer (Configure, Analyze per resource,
AnalyzeStack) and both lists of violations and diagnostics must match."""

from __future__ import annotations

from collections import Counter

from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

from policies.hipaa_rules import POLICIES
from tools.check import (
    PACK_CONFIG_DIR,
    PACK_NAME,
    PACK_VERSION,
    PackConfig,
    evaluate,
    stack_urn,
)
from tools.preview import run_program

LEVELS = {
    EnforcementLevel.ADVISORY: proto.ADVISORY,
    EnforcementLevel.MANDATORY: proto.MANDATORY,
    EnforcementLevel.DISABLED: proto.DISABLED,
}
LEVEL_NAMES = {proto.ADVISORY: "advisory", proto.MANDATORY: "mandatory"}


def struct(values) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(dict(values))
    return message


def configured_servicer(config: PackConfig) -> _PolicyAnalyzerServicer:
    """The analyzer as the CLI leaves it after Configure: levels and filled-in properties."""
    servicer = _PolicyAnalyzerServicer(PACK_NAME, PACK_VERSION, POLICIES, EnforcementLevel.ADVISORY)
    request = proto.ConfigureAnalyzerRequest()
    for policy in POLICIES:
        entry = request.policyConfig[policy.name]
        entry.enforcementLevel = LEVELS[config.level(policy)]
        entry.properties.CopyFrom(struct(config.properties(policy)))
    servicer.Configure(request, None)
    return servicer


def engine_findings(recording, config: PackConfig) -> Counter:
    servicer = configured_servicer(config)
    found: Counter = Counter()
    for resource in recording.resources:
        request = proto.AnalyzeRequest(
            type=resource.type,
            properties=struct(resource.inputs),
            urn=resource.urn,
            name=resource.name,
        )
        for diagnostic in servicer.Analyze(request, None).diagnostics:
            found[
                (
                    diagnostic.policyName,
                    diagnostic.message,
                    LEVEL_NAMES[diagnostic.enforcementLevel],
                )
            ] += 1
    stack = proto.AnalyzerResource(
        type="pulumi:pulumi:Stack",
        properties=struct({name: export.value for name, export in recording.exports.items()}),
        urn=stack_urn(recording),
        name=f"{recording.project}-{recording.stack}",
    )
    resources = [stack] + [
        proto.AnalyzerResource(
            type=r.type,
            properties=struct(r.outputs),
            urn=r.urn,
            name=r.name,
            parent=r.parent or stack.urn,
            dependencies=list(r.dependencies),
        )
        for r in recording.resources
    ]
    response = servicer.AnalyzeStack(proto.AnalyzeStackRequest(resources=resources), None)
    for diagnostic in response.diagnostics:
        found[
            (diagnostic.policyName, diagnostic.message, LEVEL_NAMES[diagnostic.enforcementLevel])
        ] += 1
    return found


DESCRIPTIONS = {policy.name: policy.description for policy in POLICIES}


def gate_findings(recording, config: PackConfig) -> Counter:
    """The gate's findings in the analyzer's words: a violation reads "description\nmessage"."""
    result = evaluate(recording, config)
    found: Counter = Counter(
        (v.policy, f"{DESCRIPTIONS[v.policy]}\n{v.message}", v.level) for v in result.violations
    )
    found.update((d.policy, d.message, "advisory") for d in result.diagnostics)
    return found


def assert_same(gate: Counter, engine: Counter) -> None:
    assert gate == engine, (
        f"only the gate: {sorted((gate - engine).elements())}\n"
        f"only the analyzer: {sorted((engine - gate).elements())}"
    )


# Dev breaks advisory rules by design: both report the same list.
def test_gate_matches_the_pack_analyzer_on_dev():
    recording = run_program("dev", seed="parity")
    config = PackConfig.load(PACK_CONFIG_DIR / "dev.json")

    engine, gate = engine_findings(recording, config), gate_findings(recording, config)

    assert engine, "the analyzer found nothing on dev: the comparison would prove nothing"
    assert_same(gate, engine)


# The committed prod stack is clean for both.
def test_gate_and_pack_analyzer_both_pass_prod():
    recording = run_program("prod", seed="parity")
    config = PackConfig.load(PACK_CONFIG_DIR / "prod.json")

    engine, gate = engine_findings(recording, config), gate_findings(recording, config)

    assert engine == Counter(), f"the analyzer flags the committed prod stack: {engine}"
    assert_same(gate, engine)


# A prod stack broken in resources (privileged, no memory limit) and in the stack (no
# attestations): both report the same mandatory findings.
def test_gate_matches_the_pack_analyzer_on_a_broken_prod():
    recording = run_program("prod", seed="parity")
    config = PackConfig.load(PACK_CONFIG_DIR / "prod.json")
    for resource in recording.of_type("docker:index/container:Container"):
        for properties in (resource.inputs, resource.outputs):
            properties["privileged"] = True
            properties.pop("memory", None)
    recording.exports["attestations"].value.clear()

    engine, gate = engine_findings(recording, config), gate_findings(recording, config)

    rules = {policy for policy, _, _ in engine}
    assert {"stack-missing-attestations"} <= rules, sorted(rules)
    assert any("privileged" in rule for rule in rules), sorted(rules)
    assert_same(gate, engine)


def test_gate_matches_the_analyzer_on_a_preview_with_unknowns():
    recording = run_program("prod", seed="parity")
    config = PackConfig.load(PACK_CONFIG_DIR / "prod.json")
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    for resource in recording.resources:
        if resource.type == "docker:index/container:Container":
            resource.inputs["memory"] = unknown
            resource.outputs["restart"] = unknown

    engine, gate = engine_findings(recording, config), gate_findings(recording, config)

    assert any("can't run policy" in message for _, message, _ in engine), engine
    assert_same(gate, engine)

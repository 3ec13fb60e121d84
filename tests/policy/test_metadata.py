"""Each rule carries the metadata an auditor and the Pulumi CLI read, and the pack configs are
valid for the CLI: names, one-sentence descriptions, HIPAA citations, CIS tags, bounded schemas."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from policy_harness import RULES
from pulumi_policy import EnforcementLevel, Severity

from tools.check import PackConfig, PackConfigError

REPO = Path(__file__).resolve().parents[2]
NAME = re.compile(
    r"^(container|volume|stack|randompassword|privatekey|certificate|image)-"
    r"(missing|disallow|enable|disable|configure|enforce)-[a-z0-9]+(-[a-z0-9]+)*$"
)
CITATION = re.compile(r"^164\.3\d\d\([a-z]\)(\(\d+\))?(\([a-z]+\))?(\([A-Z]\))?$")

# Rule -> CIS Docker Benchmark v1.6.0 numbers it must carry.
CIS_NUMBERS = {
    "container-disallow-privileged": {"5.5"},
    "container-enforce-capability-drop-all": {"5.4"},
    "container-disallow-unconfined-profiles": {"5.2", "5.22"},
    "container-disallow-sensitive-host-paths": {"5.6"},
    "container-disallow-privileged-host-ports": {"5.8"},
    "container-disallow-unexpected-published-ports": {"5.9"},
    "container-disallow-host-namespaces": {"5.10", "5.16", "5.17", "5.31"},
    "container-configure-memory-limit": {"5.11"},
    "container-enable-read-only-root": {"5.13"},
    "container-disallow-unbound-ports": {"5.14"},
    "container-configure-restart-policy": {"5.15"},
    "container-enable-no-new-privileges": {"5.26"},
    "container-missing-healthcheck": {"5.27"},
    "image-disallow-floating-tag": {"5.28"},
    "container-disallow-default-bridge": {"5.30"},
    "container-disallow-docker-socket": {"5.32"},
    "volume-disallow-sensitive-host-paths": {"5.6", "5.32"},
    "container-disallow-root-user": {"4.1"},
    "container-configure-log-rotation": {"2.13"},
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_metadata_is_complete(rule):
    policy = RULES[rule]
    citations = policy.framework.specification.split(", ") if policy.framework else []

    assert NAME.match(rule), f"{rule} is not <resource>-<verb>-<what>"
    assert policy.description.endswith(".") and policy.description.count(". ") == 0, (
        f"{rule}: description must be one sentence: {policy.description!r}"
    )
    assert isinstance(policy.severity, Severity), f"{rule} has no severity"
    assert policy.framework and policy.framework.name == "HIPAA", (
        f"{rule} lacks the HIPAA framework"
    )
    assert citations and all(CITATION.match(c) for c in citations), f"{rule}: {citations}"
    assert policy.remediation_steps, f"{rule} has no remediation steps"
    assert "hipaa" in (policy.tags or []), f"{rule} lacks the hipaa tag"


@pytest.mark.parametrize("rule", sorted(CIS_NUMBERS))
def test_cis_rules_carry_their_benchmark_number(rule):
    tags = set(RULES[rule].tags or [])

    missing = {f"cis-docker-{number}" for number in CIS_NUMBERS[rule]} - tags

    assert not missing, f"{rule} lacks {missing}"


@pytest.mark.parametrize(
    "rule", sorted(name for name, policy in RULES.items() if policy.config_schema is not None)
)
def test_config_schema_defaults_are_valid_and_bounded(rule):
    properties = RULES[rule].config_schema.properties

    for key, spec in properties.items():
        assert "default" in spec, f"{rule}.{key} has no default"
        jsonschema.validate(spec["default"], spec)
        if spec.get("type") in ("integer", "number"):
            assert "minimum" in spec and "maximum" in spec, f"{rule}.{key} threshold is unbounded"


@pytest.mark.parametrize(("stack", "level"), [("dev", "advisory"), ("prod", "mandatory")])
def test_stack_pack_config_sets_every_rule_level(stack, level):
    config = PackConfig.load(REPO / "policies" / "config" / f"{stack}.json")

    levels = {rule: config.level(policy).value for rule, policy in RULES.items()}

    assert set(levels.values()) == {level}, f"{stack}.json levels: {levels}"


def test_prod_pack_config_is_stricter_than_the_defaults():
    config = PackConfig.load(REPO / "policies" / "config" / "prod.json")

    length = config.properties(RULES["randompassword-configure-length"])

    assert length["minimumLength"] >= 16, "prod passwords must be at least 16 characters"


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"container-disallow-everything": "mandatory"}, "unknown rule(s)"),
        ({"all": "strict"}, "unknown enforcement level"),
        ({"randompassword-configure-length": {"minimumLength": 4}}, "minimumLength"),
        ({"randompassword-enforce-rotation": {"maximumAgeDays": "90"}}, "maximumAgeDays"),
        ({"container-disallow-privileged": {"strict": True}}, "takes no properties"),
        ({"image-disallow-floating-tag": {"requireDigests": True}}, "requireDigests"),
    ],
)
def test_invalid_pack_config_is_refused_like_the_cli(document, fragment):
    with pytest.raises(PackConfigError) as refused:
        PackConfig(document)

    assert fragment in str(refused.value), f"unhelpful error: {refused.value}"


def test_pack_config_fills_schema_defaults():
    config = PackConfig({"all": "mandatory"})

    properties = config.properties(RULES["randompassword-enforce-rotation"])

    assert properties == {"maximumAgeDays": 90, "keeper": "rotation"}, properties
    assert config.level(RULES["randompassword-enforce-rotation"]) == EnforcementLevel.MANDATORY


def test_pack_configs_are_plain_json_the_cli_reads():
    for stack in ("dev", "prod"):
        document = json.loads((REPO / "policies" / "config" / f"{stack}.json").read_text())

        assert document["all"] in ("advisory", "mandatory"), f"{stack}.json lacks `all`"


def test_pack_yaml_names_a_python_runtime_with_its_own_virtualenv():
    text = (REPO / "policies" / "PulumiPolicy.yaml").read_text()

    assert "name: python" in text and "virtualenv: venv" in text, text


def test_pack_starts_the_way_the_cli_runs_it():
    # The CLI runs policies/__main__.py from inside policies/: the rule package must import
    # as a top-level module there, and the pack announces its gRPC port on stdout.
    process = subprocess.Popen(
        [sys.executable, "-u", "__main__.py"],
        cwd=REPO / "policies",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline().strip()
    finally:
        process.kill()
        process.wait(timeout=10)

    assert first_line.isdigit(), f"pack did not start: {first_line!r} {process.stderr.read()}"


def test_rule_modules_import_without_starting_a_pack():
    probe = "import policies.hipaa_rules, sys; print('policies.__main__' in sys.modules)"

    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert result.stdout.strip() == "False", f"importing rules ran the pack: {result}"

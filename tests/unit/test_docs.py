"""The generated stack document: complete, secret-free, well-formed, reproducible and current."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools import docs
from tools.docs import PreviewDocument, preview_document, render
from tools.export_schema import ExportSchemaError, validate_exports

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
STACKS = ("dev", "prod")

MERMAID_ID = r"[A-Za-z][A-Za-z0-9_]*"
MERMAID_LABEL = r'"[^"]*"'
MERMAID_NODE = re.compile(
    rf"^(?P<id>{MERMAID_ID})(\[{MERMAID_LABEL}\]|\(\[{MERMAID_LABEL}\]\)|\[/{MERMAID_LABEL}/\]"
    rf"|\(\({MERMAID_LABEL}\)\)|\[\({MERMAID_LABEL}\)\])$"
)
MERMAID_EDGE = re.compile(
    rf"^(?P<source>{MERMAID_ID}) (-->|-\.->|==>)(\|{MERMAID_LABEL}\|)? (?P<target>{MERMAID_ID})$"
)
MERMAID_SUBGRAPH = re.compile(rf"^subgraph (?P<id>{MERMAID_ID})(\[{MERMAID_LABEL}\])?$")


@pytest.fixture(scope="module", params=STACKS)
def document(request) -> PreviewDocument:
    """The document of each committed stack, from the offline preview."""
    return preview_document(request.param)


def mermaid_blocks(text: str) -> list[list[str]]:
    return [
        block.strip("\n").splitlines()
        for block in re.findall(r"^```mermaid\n(.*?)^```$", text, re.S | re.M)
    ]


def mermaid_problems(lines: list[str]) -> list[str]:
    """What is wrong with one Mermaid flowchart, in the subset the docs generator writes."""
    problems, open_subgraphs, nodes, subgraphs, edges = [], [], set(), set(), []
    if not lines or not re.match(r"^(flowchart|graph) (LR|RL|TB|TD|BT)$", lines[0].strip()):
        problems.append(f"first line is not a flowchart header: {lines[:1]}")
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        if line == "end":
            if not open_subgraphs:
                problems.append(f"line {number}: `end` without a subgraph")
            else:
                open_subgraphs.pop()
        elif match := MERMAID_SUBGRAPH.match(line):
            if match["id"] in nodes | subgraphs:
                problems.append(f"line {number}: id {match['id']} defined twice")
            subgraphs.add(match["id"])
            open_subgraphs.append(match["id"])
        elif match := MERMAID_EDGE.match(line):
            edges.append((number, match["source"], match["target"]))
        elif match := MERMAID_NODE.match(line):
            if match["id"] in nodes | subgraphs or match["id"] == "end":
                problems.append(f"line {number}: id {match['id']} defined twice or reserved")
            nodes.add(match["id"])
        else:
            problems.append(f"line {number}: not a node, edge, subgraph or end: {line!r}")
    if open_subgraphs:
        problems.append(f"subgraphs never closed: {open_subgraphs}")
    for number, source, target in edges:
        for end in (source, target):
            if end not in nodes:
                problems.append(f"line {number}: edge end {end} is not a defined node")
    return problems


# The validator itself catches what it is for: unbalanced subgraphs and dangling edges.
def test_mermaid_validator_rejects_unbalanced_and_dangling_diagrams() -> None:
    broken = ["flowchart LR", "subgraph a", 'n1["x"]', 'n1 -->|"p"| n2']

    problems = mermaid_problems(broken)

    assert any("never closed" in problem for problem in problems), problems
    assert any("n2 is not a defined node" in problem for problem in problems), problems


# Every container, network, volume and published host address:port is in the document.
def test_every_container_network_volume_and_published_port_appears(
    document: PreviewDocument,
) -> None:
    recording = document.recording
    names = [r.input("name") for r in recording.of_type(CONTAINER)]
    names += [r.input("name") for r in recording.of_type(NETWORK)]
    names += [r.input("name") for r in recording.of_type(VOLUME)]
    listeners = [
        f"{port['ip']}:{int(port['external'])}"
        for container in recording.of_type(CONTAINER)
        for port in container.input("ports", []) or []
    ]

    missing = [name for name in names + listeners if f"{name}" not in document.text]

    assert names, f"stack {recording.stack} recorded no containers, networks or volumes"
    assert missing == [], f"docs/{recording.stack}.md does not mention {missing}"


# Published ports appear as rows of the ports table, not only somewhere in the text.
def test_ports_table_lists_every_published_port(document: PreviewDocument) -> None:
    recording = document.recording
    expected = {
        (container.input("name"), port["ip"], int(port["external"]), int(port["internal"]))
        for container in recording.of_type(CONTAINER)
        for port in container.input("ports", []) or []
    }
    rows = re.findall(r"^\| \S+ \| `([^`]+)` \| ([\d.]+) \| (\d+) \| (\d+) \|", document.text, re.M)

    listed = {(name, address, int(host), int(inside)) for name, address, host, inside in rows}

    assert expected <= listed, f"ports missing from the table: {sorted(expected - listed)}"


# No password, private key or other secret the preview generated appears in the document.
def test_no_generated_secret_appears_in_the_document(document: PreviewDocument) -> None:
    secrets = list(document.recording.secret_values())

    leaked = [secret[:6] + "…" for secret in secrets if secret in document.text]

    assert secrets, "the preview produced no secret to scan for"
    assert leaked == [], f"{len(leaked)} secret value(s) appear in the document: {leaked}"


# The topology diagram is a well-formed Mermaid flowchart naming every container.
def test_topology_is_well_formed_mermaid(document: PreviewDocument) -> None:
    blocks = mermaid_blocks(document.text)
    containers = [r.input("name") for r in document.recording.of_type(CONTAINER)]

    assert len(blocks) == 1, f"expected one Mermaid block, found {len(blocks)}"
    assert mermaid_problems(blocks[0]) == []
    diagram = "\n".join(blocks[0])
    assert [name for name in containers if name not in diagram] == []


# Every export but the credentials is plain, so `pulumi stack output --json` shows it.
def test_only_the_credentials_export_holds_secrets(document: PreviewDocument) -> None:
    holding = sorted(
        name for name, export in document.recording.exports.items() if export.holds_secret()
    )

    assert holding == ["credentials"], f"exports holding secrets: {holding}"


# `--outputs` (a `pulumi stack output --json` file) gives the very document of the preview.
def test_document_from_outputs_file_equals_preview_document(
    document: PreviewDocument, tmp_path: Path
) -> None:
    stack = document.recording.stack
    outputs, compliance = tmp_path / "outputs.json", tmp_path / "compliance.json"
    outputs.write_text(json.dumps(document.outputs, indent=2, sort_keys=True))
    compliance.write_text(json.dumps(document.compliance))
    target = tmp_path / f"{stack}.md"

    arguments = ["--stack", stack, "--outputs", str(outputs), "--compliance", str(compliance)]

    code = docs.main([*arguments, "--out", str(target)])

    assert code == 0
    assert target.read_text() == document.text, "document from the outputs file differs"


# The committed docs/<stack>.md is what the program generates today.
def test_committed_docs_are_current(document: PreviewDocument) -> None:
    stack = document.recording.stack
    committed = docs.DOCS_DIR / f"{stack}.md"

    assert committed.exists(), f"{committed} is missing: run `make docs STACK={stack}`"
    assert committed.read_text() == document.text, (
        f"docs/{stack}.md is stale: run `make docs STACK={stack}` and commit it"
    )


# A planned stack shows no certificate fingerprint or expiry; a deployed one shows them all.
def test_certificate_facts_appear_only_for_a_deployed_stack(document: PreviewDocument) -> None:
    deployed = {**document.outputs, "planned": False}
    fingerprints = [cert["sha256"] for cert in document.outputs["certificates"].values()]

    text = render(document.recording.stack, deployed, document.compliance, "test")

    assert not any(fingerprint in document.text for fingerprint in fingerprints)
    assert "issued at deploy" in document.text
    assert all(fingerprint in text for fingerprint in fingerprints)
    assert "issued at deploy" not in text


# The order of keys in an outputs file does not change the document.
def test_document_does_not_depend_on_key_order(document: PreviewDocument) -> None:
    reversed_outputs = json.loads(json.dumps(document.outputs), object_pairs_hook=_reversed)

    text = render(document.recording.stack, reversed_outputs, document.compliance, "test")

    assert text == document.text


def _reversed(pairs: list[tuple[str, object]]) -> dict:
    return dict(reversed(pairs))


# Without a policy report the compliance section says it was not evaluated, never "passing".
def test_document_without_compliance_report_says_not_evaluated(
    document: PreviewDocument,
) -> None:
    text = render(document.recording.stack, document.outputs, None, "test")

    section = text.split("## Compliance", 1)[1].split("\n## ", 1)[0]
    assert "**not evaluated**" in section
    assert "passing" not in section and "violated" not in section


# An export that `pulumi stack output` shows as [secret] is named in the error, with the version.
def test_outputs_with_a_secret_export_are_rejected_naming_it(document: PreviewDocument) -> None:
    outputs = {**document.outputs, "volumes": "[secret]"}

    with pytest.raises(ExportSchemaError) as raised:
        validate_exports(outputs, "outputs.json")

    message = str(raised.value)
    assert "outputs.json" in message and "schema v1" in message, message
    assert "export 'volumes' is a secret" in message, message


# Outputs of another schema version are refused before anything is rendered.
def test_outputs_of_another_schema_version_are_rejected(document: PreviewDocument) -> None:
    outputs = {**document.outputs, "schemaVersion": 99}

    with pytest.raises(ExportSchemaError, match=r"'schemaVersion' is 99.*reads version 1"):
        validate_exports(outputs, "outputs.json")


# A missing export or a wrongly typed field is named by its path.
def test_outputs_with_a_broken_field_name_the_path(document: PreviewDocument) -> None:
    outputs = json.loads(json.dumps(document.outputs))
    del outputs["flows"]
    outputs["networks"]["data"]["internal"] = "yes"

    with pytest.raises(ExportSchemaError) as raised:
        validate_exports(outputs, "outputs.json")

    message = str(raised.value)
    assert "'flows' is a required property" in message, message
    assert "export 'networks.data.internal'" in message, message


# The command refuses an outputs file that is not JSON, with exit code 2 and the file name.
def test_command_rejects_an_unreadable_outputs_file(tmp_path: Path, capsys) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text("Current stack outputs (3):")

    code = docs.main(["--stack", "prod", "--outputs", str(outputs), "--out", str(tmp_path / "x")])

    assert code == 2
    assert f"stack outputs file {outputs} is not JSON" in capsys.readouterr().err


# A flow naming a party that is neither a service nor an outside party is refused by path.
def test_outputs_with_a_dangling_flow_are_rejected(document: PreviewDocument) -> None:
    outputs = json.loads(json.dumps(document.outputs))
    outputs["flows"].append({**outputs["flows"][0], "target": "ghost"})
    index = len(outputs["flows"]) - 1

    with pytest.raises(ExportSchemaError, match=rf"'flows\.{index}\.target' names 'ghost'"):
        validate_exports(outputs, "outputs.json")


# `--check` reports a stale document with exit code 1 and leaves the file alone.
def test_check_option_reports_a_stale_document(document: PreviewDocument, tmp_path: Path) -> None:
    stack = document.recording.stack
    outputs, target = tmp_path / "outputs.json", tmp_path / f"{stack}.md"
    outputs.write_text(json.dumps(document.outputs))
    target.write_text("# an old document\n")
    arguments = ["--stack", stack, "--outputs", str(outputs), "--out", str(target)]

    stale = docs.main([*arguments, "--check"])
    docs.main(arguments)
    current = docs.main([*arguments, "--check"])

    assert (stale, current) == (1, 0), f"--check exit codes {stale}, {current}"

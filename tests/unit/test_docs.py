"""The generated stack document: complete, secret-free, well-formed, reproducible and current."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tools import docs
from tools.docs import PreviewDocument, preview_document, render
from tools.export_schema import ExportSchemaError, validate_exports
from tools.preview import REPO_ROOT

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


@pytest.fixture(scope="module")
def prod_document() -> PreviewDocument:
    """The committed prod stack's document: the one with every optional export filled."""
    return preview_document("prod")


@pytest.fixture(scope="module")
def variant_document(tmp_path_factory) -> PreviewDocument:
    """Prod with the EDR certificate's issue date recorded, no client packages built at first
    start and a modality named by its DNS host name."""
    stack = yaml.safe_load((REPO_ROOT / "Pulumi.prod.yaml").read_text())
    config = stack["config"]
    config["hospital:edr"].update(certificateIssued="2026-03-01", buildClientPackages=False)
    config["hospital:pacs"]["modalities"]["READING1"]["host"] = "reading1.radiology.example.org"
    stack_file = tmp_path_factory.mktemp("variant") / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(stack))
    return preview_document("prod", stack_file)


def unlisted(text: str, names: list[str]) -> list[str]:
    """The names the document never shows as a whole `backticked` name (as its tables do): a
    container name inside a longer volume name does not count."""
    return [name for name in names if f"`{name}`" not in text]


def section(text: str, heading: str) -> str:
    """The body of the section under `heading` (a `## ` or `### ` line), up to the next one."""
    level = heading.split(" ", 1)[0]
    body = text.split(f"\n{heading}\n", 1)[1]
    return re.split(rf"^#{{2,{len(level)}}} ", body, maxsplit=1, flags=re.M)[0]


def flows_between(outputs: dict, source: str, target: str) -> list[dict]:
    return [f for f in outputs["flows"] if (f["source"], f["target"]) == (source, target)]


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

    missing = unlisted(document.text, names + listeners)

    assert names, f"stack {recording.stack} recorded no containers, networks or volumes"
    assert missing == [], f"docs/{recording.stack}.md does not mention {missing}"


# The completeness check matches whole names: a container named only as the prefix of its
# volumes' names (hospital-prod-emr in hospital-prod-emr-sites) counts as missing.
def test_completeness_check_misses_a_container_named_only_inside_volume_names(
    prod_document: PreviewDocument,
) -> None:
    container = next(
        r.input("name") for r in prod_document.recording.of_type(CONTAINER) if "emr" in r.name
    )
    text = prod_document.text.replace(f"`{container}`", "`(removed)`")

    missing = unlisted(text, [container])

    assert f"{container}-" in text, f"no volume name starts with {container}: nothing to show"
    assert missing == [container], f"{container} was counted although no table lists it"


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
    # File carriers never run and join no network: the services table names them instead.
    containers = [r.input("name") for r in document.recording.started_containers()]

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


def _set(path: str, value: object):
    """A mutation of the outputs: `value` at the dotted `path`."""

    def mutate(outputs: dict) -> None:
        *parents, last = path.split(".")
        target = outputs
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


def _drop(path: str):
    """A mutation of the outputs: the key at the dotted `path` removed."""

    def mutate(outputs: dict) -> None:
        *parents, last = path.split(".")
        target = outputs
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


BROKEN_EXPORTS = {
    "edr not an object": (_set("edr", "velociraptor"), "'edr'"),
    "edr without its GUI": (_drop("edr.guiUrl"), "'edr': 'guiUrl' is a required"),
    "edr enrolment as one string": (
        _set("edr.enrolment.hostInstall", "sh install.sh"),
        "'edr.enrolment.hostInstall'",
    ),
    "edr certificate recorded without dates": (
        _set("edr.serverCertificate.status", "recorded"),
        "'edr.serverCertificate': 'issued' is a required",
    ),
    "edr certificate expiry not a date": (
        _set("edr.serverCertificate.notAfter", "next year"),
        "'edr.serverCertificate.notAfter'",
    ),
    "edr setup steps not a list": (_set("edr.monitoringSetup", "GUI"), "'edr.monitoringSetup'"),
    "dicom port out of range": (_set("dicom.port", 70000), "'dicom.port'"),
    "dicom modality allowed an unknown service": (
        _set("dicom.modalities.CT1.allow", ["push"]),
        "'dicom.modalities.CT1.allow.0'",
    ),
    "backup without enabled": (_set("backup", {}), "'backup': 'enabled' is a required"),
    "backup enabled as text": (_set("backup.enabled", "yes"), "'backup.enabled'"),
    "enabled backup without schedule": (
        _drop("backup.schedule"),
        "'backup': 'schedule' is a required",
    ),
    "enabled backup without restore steps": (
        _set("backup.restoreSteps", []),
        "'backup.restoreSteps'",
    ),
    "backup retention negative": (_set("backup.retention.daily", -1), "'backup.retention.daily'"),
}


# A broken edr, dicom or backup export is refused naming its path; it never drops a section.
@pytest.mark.parametrize("mutation", BROKEN_EXPORTS.values(), ids=list(BROKEN_EXPORTS))
def test_broken_service_exports_are_rejected_naming_the_path(
    prod_document: PreviewDocument, mutation
) -> None:
    mutate, expected = mutation
    outputs = copy.deepcopy(prod_document.outputs)
    mutate(outputs)

    with pytest.raises(ExportSchemaError) as raised:
        render("prod", outputs, prod_document.compliance, "outputs.json")

    assert f"export {expected}" in str(raised.value), str(raised.value)


# A disabled backup is `{"enabled": false}` alone, and the document says nothing is backed up.
def test_disabled_backup_export_is_valid_and_documented(prod_document: PreviewDocument) -> None:
    outputs = {**prod_document.outputs, "backup": {"enabled": False}}

    text = render("prod", outputs, prod_document.compliance, "test")

    assert "Backups are **disabled**" in section(text, "## Backup and restore")


# The planned document's banner carries the three commands that regenerate it from a deployed
# stack, and they give the very document of the preview (the check report included).
def test_banner_commands_regenerate_the_same_document(
    document: PreviewDocument, tmp_path: Path, monkeypatch
) -> None:
    stack = document.recording.stack
    banner = document.text.split("> **Planned stack.**", 1)[1].split("\n\n", 1)[0]
    commands = re.findall(r"^> (\S.*)$", banner, re.M)
    commands = [c for c in commands if not c.startswith("```")]
    outputs_file = commands[0].rsplit("> ", 1)[1]
    compliance_file = commands[1].rsplit("> ", 1)[1]
    arguments = shlex.split(commands[2])[4:]
    (tmp_path / outputs_file).write_text(json.dumps(document.outputs))
    (tmp_path / compliance_file).write_text(json.dumps(document.compliance))
    monkeypatch.chdir(tmp_path)

    code = docs.main([*arguments, "--out", "regenerated.md"])

    assert commands[0].startswith(f"pulumi stack output --stack {stack} --json"), commands
    assert commands[1].startswith(f"python -m tools check --stack {stack} --format json"), commands
    assert commands[2].startswith("python -m tools docs") and "--compliance" in arguments
    assert code == 0
    assert (tmp_path / "regenerated.md").read_text() == document.text, "banner commands differ"


# A new team member finds how to deploy (make up, or pulumi up with the stack's pack config)
# and how to read the generated passwords, with account names only.
def test_document_says_how_to_deploy_and_read_the_passwords(document: PreviewDocument) -> None:
    stack, outputs = document.recording.stack, document.outputs
    running = section(document.text, "## Running the stack")
    pack_config = outputs["compliance"]["packConfig"]

    assert f"make up STACK={stack}" in running, running
    assert (
        f"pulumi up --stack {stack} --policy-pack ./policies --policy-pack-config {pack_config}"
        in running
    ), running
    assert f"pulumi stack output --stack {stack} credentials --show-secrets" in running, running
    credentials = section(document.text, "## Credentials")
    assert all(f"`{account}`" in credentials for account in outputs["credentialAccounts"])


# The EDR first steps: the GUI user and its credential, every exported monitoring setup step
# and every enrolment command, in that order.
def test_edr_first_steps_come_from_the_edr_export(document: PreviewDocument) -> None:
    edr = document.outputs["edr"]
    steps = section(document.text, "### EDR first steps")
    expected = [
        f"as user `{edr['adminUser']}`",
        f"`{edr['adminPasswordAccount']}` credential",
        f'.["{edr["adminPasswordAccount"]}"]',
        *edr["monitoringSetup"],
        *edr["enrolment"]["hostInstall"],
    ]

    positions = [steps.find(text) for text in expected]

    assert -1 not in positions, [t for t, at in zip(expected, positions, strict=True) if at < 0]
    assert positions == sorted(positions), "EDR first steps are out of order"


# The EDR server certificate is in the Certificates section: "not recorded" with the command
# that reads it, or its recorded issue and expiry dates.
def test_edr_server_certificate_is_listed_recorded_or_not(
    prod_document: PreviewDocument, variant_document: PreviewDocument
) -> None:
    unrecorded = section(prod_document.text, "### EDR server certificate")
    recorded = section(variant_document.text, "### EDR server certificate")
    certificate = variant_document.outputs["edr"]["serverCertificate"]

    assert "**not recorded**" in unrecorded, unrecorded
    assert prod_document.outputs["edr"]["serverCertificate"]["check"] in unrecorded
    assert f"Issued: {certificate['issued']}" in recorded, recorded
    assert f"Expires: {certificate['notAfter']}" in recorded, recorded
    assert "not recorded" not in recorded, recorded


# The connections table lists the EDR's probes of the EMR and PACS sites through the gateway's
# published port, and its download of client releases only when it builds client packages.
def test_flows_include_the_edr_probes_and_release_download(
    prod_document: PreviewDocument, variant_document: PreviewDocument
) -> None:
    outputs = prod_document.outputs
    gateway_ports = {(p["address"], p["hostPort"]) for p in outputs["services"]["gateway"]["ports"]}
    probes = flows_between(outputs, "edr", "gateway")
    probed = {
        service
        for service in ("emr", "pacs")
        for flow in probes
        if outputs["endpoints"][service].split("/")[2].split(":")[0] in flow["purpose"]
    }

    assert probed == {"emr", "pacs"}, f"EDR probes found: {[f['purpose'] for f in probes]}"
    assert all((f["address"], f["port"]) in gateway_ports for f in probes), probes
    assert len(flows_between(outputs, "edr", "internet")) == 1
    assert flows_between(variant_document.outputs, "edr", "internet") == []
    assert "| edr (`hospital-prod-edr`) | Internet | 443 |" in prod_document.text


# A modality named by its DNS host name is a valid flow address, not a schema error.
def test_modality_host_name_is_accepted_as_flow_address(
    variant_document: PreviewDocument,
) -> None:
    addresses = [flow.get("address") for flow in variant_document.outputs["flows"]]

    assert "reading1.radiology.example.org" in addresses, addresses

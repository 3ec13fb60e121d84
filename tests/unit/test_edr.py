"""The Velociraptor server under the offline preview: the image contract, what is published where,
the hospital artifacts checked against the artifact schema and the documented VQL, and exports.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from components.edr import (
    ADMIN_PASSWORD_VQL,
    ARTIFACTS_SOURCE,
    AUDIT_KEY_MAX_BYTES,
    FRONTEND_BIND_PORT,
    GUI_BIND_PORT,
    IMAGE_DEFAULT_PASSWORD,
    IMAGE_VARIABLES,
    INITIALIZE_ARTIFACT,
    PACS_MONITOR_ACCOUNT,
    EdrSettings,
    artifact_defaults,
    artifacts_with_secrets,
    audit_rules,
    certificate_warnings,
    monitoring_setup,
    phi_audit_keys,
    re2_literal,
    render_artifacts,
    server_certificate,
    server_environment,
    start_script,
)
from components.pacs import USER_NAMES
from components.platform import WebSite
from tools.preview import run_program
from tools.recording import RecordedResource, Recording

REPO = Path(__file__).resolve().parents[2]
CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
PASSWORD = "random:index/randomPassword:RandomPassword"

# Every variable the image reads: Docker/entrypoint (LITERAL_CONFIG, CONFIG_PATH,
# INITIAL_ADMIN_PASSWORD) and Docker/init.vql (the rest) of the Velociraptor repository.
ENTRYPOINT_VARIABLES = {
    "VELOCIRAPTOR_HOSTNAME",
    "VELOCIRAPTOR_FRONTEND_PORT",
    "VELOCIRAPTOR_GUI_PORT",
    "VELOCIRAPTOR_DATASTORE_PATH",
    "VELOCIRAPTOR_CONFIG_PATH",
    "VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD",
    "VELOCIRAPTOR_NO_INITIALIZE",
    "VELOCIRAPTOR_LITERAL_CONFIG",
}

# The VQL plugins and functions the artifacts may call, each with the arguments its page in the
# VQL reference (docs.velociraptor.app/vql_reference/<section>/<name>/) documents. None means
# free-form arguments.
DOCUMENTED_VQL: dict[str, frozenset[str] | None] = {
    # event/
    "clock": frozenset({"start", "period", "ms"}),
    "watch_monitoring": frozenset({"artifact"}),
    "watch_syslog": frozenset({"filename", "accessor", "buffer_size", "query"}),
    "watch_auditd": frozenset({"filename", "accessor", "buffer_size"}),
    "fifo": frozenset({"query", "max_age", "max_rows", "flush"}),
    # popular/
    "foreach": frozenset({"row", "query", "async", "workers", "column"}),
    "glob": frozenset(
        {"globs", "root", "accessor", "nosymlink", "recursion_callback", "one_filesystem"}
    ),
    "http_client": frozenset(
        {
            "url",
            "params",
            "headers",
            "method",
            "data",
            "chunk_size",
            "disable_ssl_security",
            "skip_verify",
            "tempfile_extension",
            "remove_last",
            "root_ca",
            "cookie_jar",
        }
    ),
    "info": frozenset(),
    "scope": frozenset(),
    "timestamp": frozenset({"epoch", "cocoatime", "mactime", "winfiletime", "string", "format"}),
    "count": frozenset({"items"}),
    "set": frozenset({"item", "field", "value"}),
    "range": frozenset({"start", "end", "step"}),
    # basic/ (`if` is both a function and a plugin, with the same arguments)
    "now": frozenset(),
    "dict": None,
    "format": frozenset({"format", "args"}),
    "upcase": frozenset({"string"}),
    "base64decode": frozenset({"string"}),
    "base64encode": frozenset({"string"}),
    "regex_transform": frozenset({"source", "map", "key"}),
    "int": frozenset({"int"}),
    "if": frozenset({"condition", "then", "else"}),
    # parsers/
    "parse_x509": frozenset({"data"}),
    "parse_string_with_regex": frozenset({"string", "regex"}),
    "parse_float": frozenset({"string"}),
    "parse_json": frozenset({"data"}),
    # other/ (free-form arguments become the alert's fields)
    "alert": None,
}
EVENT_PLUGINS = {"clock", "watch_monitoring", "watch_syslog", "watch_auditd", "fifo"}
# Where a call may run. Server only: watch_monitoring reads the server's event queues (the alert
# queue among them), clients() its client index, and http_client here probes the gateway and the
# frontend from the server. Client only: plugins that read the host's files (logs, auditd).
SERVER_ONLY_VQL = {"watch_monitoring", "clients", "http_client"}
CLIENT_ONLY_VQL = {"watch_syslog", "watch_auditd", "glob"}
ANYWHERE_VQL = set(DOCUMENTED_VQL) - SERVER_ONLY_VQL - CLIENT_ONLY_VQL
SERVER_TYPES = {"SERVER", "SERVER_EVENT"}
CLIENT_TYPES = {"CLIENT", "CLIENT_EVENT"}
# The server VQL of the start script's admin query, with its documented arguments
# (vql_reference/server/user_create, passwd; basic/environ).
START_VQL: dict[str, frozenset[str]] = {
    "environ": frozenset({"var"}),
    "user_create": frozenset({"user", "roles", "password", "orgs"}),
    "passwd": frozenset({"user", "password"}),
    "scope": frozenset(),
}
ARTIFACT_TYPES = {"CLIENT", "CLIENT_EVENT", "SERVER", "SERVER_EVENT"}
DICOM_TRAFFIC = "Hospital.Server.DicomTraffic"
# The parameter types of docs/artifacts/parameters; `redacted` hides the value in requests.
PARAMETER_TYPES = {
    "string",
    "int",
    "int64",
    "bool",
    "regex",
    "csv",
    "json",
    "timestamp",
    "redacted",
}
# Namespaces of Velociraptor's built-in artifacts; a custom artifact must not shadow them.
BUILT_IN_NAMESPACES = {
    "Admin",
    "Generic",
    "Linux",
    "MacOS",
    "Network",
    "Reporting",
    "Server",
    "System",
    "Windows",
    "Container",
}
# Columns the plugins above emit, as documented (http_client: Url, Content, Response;
# watch_syslog: OSPath, Line; glob: OSPath; event rows from clients carry ClientId).
PLUGIN_COLUMNS = {"Url", "Content", "Response", "OSPath", "Line", "ClientId"}
VQL_KEYWORDS = {"SELECT", "FROM", "WHERE", "LET", "AS", "AND", "OR", "NOT", "LIMIT", "GROUP"}
VQL_KEYWORDS |= {"BY", "ORDER", "TRUE", "FALSE", "NULL", "IN"}


def artifact_paths() -> list[Path]:
    return sorted(ARTIFACTS_SOURCE.glob("*.yaml"))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def without_literals(query: str) -> str:
    """The query with string literals, backtick names and comments blanked out."""
    query = re.sub(r"//[^\n]*", " ", query)
    query = re.sub(r"'''.*?'''", '""', query, flags=re.S)
    query = re.sub(r'"(?:\\.|[^"\\])*"', '""', query)
    query = re.sub(r"'(?:\\.|[^'\\])*'", '""', query)
    return re.sub(r"`[^`]*`", "Name", query)


STRING = re.compile(r"""("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')""")


def enclosed(query: str, opening: str, closing: str) -> list[str]:
    """The text between every match of the regex `opening` (which ends with the opening bracket)
    and the bracket `closing` that closes it, skipping over string literals."""
    pairs = {closing: -1, {")": "(", "]": "["}[closing]: 1}
    found = []
    for match in re.finditer(opening, query):
        position, depth = match.end(), 1
        while depth:
            literal = STRING.match(query, position)
            if literal:
                position = literal.end()
                continue
            depth += pairs.get(query[position], 0)
            position += 1
        found.append(query[match.end() : position - 1])
    return found


def regex_lists(query: str) -> list[str]:
    """The text inside every `regex=[...]`."""
    return enclosed(query, r"\bregex=\[", "]")


def calls(query: str) -> list[tuple[str, str]]:
    """(function, argument text) for every call in the query, nested calls included."""
    text = without_literals(query)
    found = []
    for match in re.finditer(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(", text):
        depth, start = 1, match.end()
        position = start
        while depth and position < len(text):
            depth += {"(": 1, ")": -1}.get(text[position], 0)
            position += 1
        found.append((match.group(1), text[start : position - 1]))
    return found


def top_level_arguments(arguments: str) -> set[str]:
    """The names of the `name=value` arguments at the outer level of one call."""
    names, depth = set(), 0
    for match in re.finditer(r"[(){}\[\]]|\b([A-Za-z_][A-Za-z0-9_]*)\s*=(?![=~])", arguments):
        token = match.group(0)
        if token in "({[":
            depth += 1
        elif token in ")}]":
            depth -= 1
        elif depth == 0:
            names.add(match.group(1))
    return names


def argument(arguments: str, name: str) -> str | None:
    """The text of the `name=` argument at the outer level of one call's arguments."""
    named = re.compile(rf"(?<![\w.]){name}\s*=(?![=~])")
    depth, start = 0, None
    for position, character in enumerate(arguments):
        if start is None and depth == 0 and (match := named.match(arguments, position)):
            start = match.end()
        depth += {"(": 1, "{": 1, "[": 1, ")": -1, "}": -1, "]": -1}.get(character, 0)
        if start is not None and depth == 0 and character == "," and position >= start:
            return arguments[start:position].strip()
    return arguments[start:].strip() if start is not None else None


def queries(definition: dict) -> list[str]:
    return [source["query"] for source in definition["sources"]]


def called(definition: dict) -> set[str]:
    return {function for query in queries(definition) for function, _ in calls(query)}


def arguments_of(definition: dict, function: str) -> list[str]:
    return [args for query in queries(definition) for f, args in calls(query) if f == function]


def edr_container(recording: Recording) -> RecordedResource:
    return recording.named("edr", CONTAINER)


def environment(container: RecordedResource) -> dict[str, str]:
    return dict(line.split("=", 1) for line in container.input("envs"))


def mounts(container: RecordedResource) -> dict[str, dict]:
    return {volume["containerPath"]: volume for volume in container.input("volumes")}


def labels(resource: RecordedResource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.input("labels", [])}


def mutated_prod(tmp_path: Path, **edr: object) -> Recording:
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["hospital:edr"].update(edr)
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    return run_program("prod", stack_file)


# ---- the image contract ----------------------------------------------------------------------


# The server sets only variables the image reads, and every one it needs for its first config.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_server_sets_only_the_image_variables(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    variables = set(environment(edr_container(recording)))

    assert variables <= ENTRYPOINT_VARIABLES, (
        f"unknown variables: {variables - ENTRYPOINT_VARIABLES}"
    )
    required = ENTRYPOINT_VARIABLES - {"VELOCIRAPTOR_NO_INITIALIZE", "VELOCIRAPTOR_LITERAL_CONFIG"}
    assert required <= variables, f"missing variables: {required - variables}"
    assert "VELOCIRAPTOR_LITERAL_CONFIG" not in variables, "a literal config puts keys in the env"


# The module's own list of the image's variables is the entrypoint's list, no more, no less.
def test_module_names_the_entrypoint_variables() -> None:
    assert IMAGE_VARIABLES == ENTRYPOINT_VARIABLES, IMAGE_VARIABLES ^ ENTRYPOINT_VARIABLES


# The generated admin password reaches the container as a secret, and never as the image default.
def test_admin_password_is_generated_and_secret(prod_recording: Recording) -> None:
    container = edr_container(prod_recording)
    envs = container.input("envs")
    index = next(i for i, line in enumerate(envs) if line.startswith("VELOCIRAPTOR_INITIAL_"))

    password = envs[index].split("=", 1)[1]

    assert container.input_is_secret(f"envs.{index}"), "the admin password env is not secret"
    assert password != IMAGE_DEFAULT_PASSWORD, "the image's default password is used"
    generated = [
        p.output("result")
        for p in prod_recording.of_type(PASSWORD)
        if p.input("keepers")["account"] == "edr-admin"
    ]
    assert generated == [password], "the password is not the generated edr-admin password"
    assert len(password) >= 16, "prod passwords must be at least 16 characters"


# ---- the start script ---------------------------------------------------------------------------

GATEWAY_GUI = "https://edr.hospital.example.org:8889/app/index.html"
AGENTS_GUI = "https://10.40.0.10:8889/app/index.html"
STUB_PASSWORD = "Stub-Admin-Password-7431"
STUB_VELOCIRAPTOR = """#!{python}
import json, os, sys
arguments = sys.argv[1:]
config = os.environ["STUB_CONFIG"]
password = os.environ.get("VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD")
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({{"argv": arguments, "password": password}}) + "\\n")
if arguments[:2] == ["query", "-f"]:
    open(config, "w").write("GUI:\\n  public_url: {agents}\\n")
elif "show" in arguments:
    url = json.loads(arguments[arguments.index("--merge") + 1])["GUI"]["public_url"]
    print("GUI:\\n  public_url: " + url)
elif "query" in arguments:
    print(json.dumps({{"Admin": None if os.environ.get("STUB_REFUSE") else "admin"}},
                     separators=(",", ":")))
"""


def step(argv: list[str]) -> str:
    if argv[:2] == ["query", "-f"]:
        return "init"
    return "public_url" if "show" in argv else "admin"


def start(tmp_path: Path, *, existing_config: str | None = None, refuse: bool = False):
    """Runs the start script with a stand-in velociraptor and image command in `tmp_path`;
    returns (the finished process, the steps it ran in order, their argv and environment)."""
    velociraptor = tmp_path / "velociraptor"
    velociraptor.write_text(STUB_VELOCIRAPTOR.format(python=sys.executable, agents=AGENTS_GUI))
    velociraptor.chmod(0o755)
    entrypoint = tmp_path / "entrypoint"
    entrypoint.write_text(f'echo \'{{"argv": ["entrypoint"]}}\' >> "{tmp_path / "log"}"\n')
    config = tmp_path / "server.config.yaml"
    if existing_config is not None:
        config.write_text(existing_config)
    script = start_script(
        GATEWAY_GUI,
        config_file=str(config),
        binary=str(velociraptor),
        init_vql="/bin/init.vql",
        image_command=("/bin/sh", str(entrypoint)),
    )
    environment = {
        "PATH": os.environ["PATH"],
        "STUB_CONFIG": str(config),
        "STUB_LOG": str(tmp_path / "log"),
        "VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD": STUB_PASSWORD,
        **({"STUB_REFUSE": "1"} if refuse else {}),
    }

    finished = subprocess.run(
        ["/bin/sh", "-c", script, "edr"], env=environment, capture_output=True, text=True
    )

    runs = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    steps = ["entrypoint" if run["argv"] == ["entrypoint"] else step(run["argv"]) for run in runs]
    return finished, steps, runs


# First start: the image's own init.vql writes the config, the GUI's public URL is moved to the
# gateway, admin gets the stack's password, and only then the image's command starts the server.
def test_first_start_initialises_then_starts_the_image(tmp_path: Path) -> None:
    finished, steps, runs = start(tmp_path)

    assert finished.returncode == 0, finished.stderr
    assert steps == ["init", "public_url", "admin", "entrypoint"], steps
    assert f"public_url: {GATEWAY_GUI}" in (tmp_path / "server.config.yaml").read_text()
    assert runs[0]["argv"] == ["query", "-f", "/bin/init.vql"], "not the image's own init step"


# A restart (a password rotation replaces the container) sets the current password again and
# leaves a config that already names the gateway untouched.
def test_every_start_applies_the_stack_password(tmp_path: Path) -> None:
    config = f"GUI:\n  public_url: {GATEWAY_GUI}\n"

    finished, steps, runs = start(tmp_path, existing_config=config)

    assert finished.returncode == 0, finished.stderr
    assert steps == ["admin", "entrypoint"], steps
    admin = runs[0]
    assert admin["argv"][-1] == ADMIN_PASSWORD_VQL, "the admin query is not the checked one"
    assert admin["password"] == STUB_PASSWORD, "the password does not reach the query's env"
    assert (tmp_path / "server.config.yaml").read_text() == config


# The password travels in the environment only: no command the script runs carries it.
def test_password_is_on_no_command_line(tmp_path: Path) -> None:
    _, _, runs = start(tmp_path)

    argv = " ".join(part for run in runs for part in run["argv"])

    assert STUB_PASSWORD not in argv, "the admin password is on a command line"


# A password the server refuses stops the start, so a rotation never fails unseen.
def test_refused_password_stops_the_start(tmp_path: Path) -> None:
    finished, steps, _ = start(
        tmp_path, existing_config=f"  public_url: {GATEWAY_GUI}\n", refuse=True
    )

    assert finished.returncode != 0, "the server starts with a password other than the stack's"
    assert "entrypoint" not in steps, steps
    assert "not starting" in finished.stderr, finished.stderr


# The admin query calls only documented server VQL, reads the password from the image's variable,
# and sets it on the user the stack exports, creating that user if it is missing.
def test_admin_query_reads_the_password_from_the_environment() -> None:
    found = calls(ADMIN_PASSWORD_VQL)

    for function, arguments in found:
        assert function in START_VQL, f"{function}() is not documented server VQL"
        assert top_level_arguments(arguments) <= START_VQL[function], arguments
    by_name = {function: arguments for function, arguments in found}
    assert re.search(r'environ\(var="VELOCIRAPTOR_INITIAL_ADMIN_PASSWORD"\)', ADMIN_PASSWORD_VQL)
    assert argument(by_name["passwd"], "password") == "password", "not the variable's value"
    assert argument(by_name["user_create"], "password") == "password"
    assert "admin" in ADMIN_PASSWORD_VQL


# The container starts through the start script, ending in the image's own command, with the
# GUI's public URL on the gateway's name and port rather than the agents' address.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_container_starts_through_the_start_script(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    container = edr_container(recording)
    gui_url = recording.export("edr")["guiUrl"]

    command = container.input("command")

    assert command[:2] == ["/bin/sh", "-c"], command
    assert command[2] == start_script(f"{gui_url}app/index.html"), "another start script"
    assert command[2].splitlines()[-1] == "exec /bin/sh /bin/entrypoint"
    merged = json.loads(re.search(r"--merge '([^']+)'", command[2]).group(1))
    assert merged == {"GUI": {"public_url": f"{gui_url}app/index.html"}}
    agents = environment(container)["VELOCIRAPTOR_HOSTNAME"]
    assert f"//{agents}:" not in merged["GUI"]["public_url"], "the GUI URL names the agents"
    password = next(line for line in container.input("envs") if "ADMIN_PASSWORD" in line)
    assert password.split("=", 1)[1] not in " ".join(command), "the password is in the command"


# Config and datastore live on volumes at the image's paths, classed so backups cover both.
def test_config_and_datastore_volumes_at_the_image_paths(prod_recording: Recording) -> None:
    container = edr_container(prod_recording)
    by_path = mounts(container)
    env = environment(container)
    volumes = {v.input("name"): v for v in prod_recording.of_type(VOLUME)}

    config = volumes[by_path["/etc/velociraptor/"]["volumeName"]]
    datastore = volumes[by_path["/datastore/"]["volumeName"]]

    assert labels(config)["hospital.data-class"] == "config", "server keys must be backed up"
    assert labels(datastore)["hospital.data-class"] == "phi", "forensic data may hold PHI"
    assert env["VELOCIRAPTOR_DATASTORE_PATH"] == "/datastore/"
    assert env["VELOCIRAPTOR_CONFIG_PATH"].startswith("/etc/velociraptor/"), "config off volume"
    assert all(labels(v)["hospital.service"] == "edr" for v in (config, datastore))
    assert all(v.options.get("retainOnDelete") for v in (config, datastore)), "prod must retain"


# The hospital artifacts are uploaded one by one into the image's artifact directory, and no
# mount covers that directory, so the image's own Container.InitializeServer stays visible.
def test_artifacts_sit_beside_the_image_initialisation_artifact(prod_recording: Recording) -> None:
    container = edr_container(prod_recording)

    uploaded = sorted(upload["file"] for upload in container.input("uploads"))

    assert not any(path.startswith("/custom_artifacts") for path in mounts(container)), (
        "a mount over /custom_artifacts/ hides the image's initialisation artifact"
    )
    expected = sorted(f"/custom_artifacts/{path.name}" for path in artifact_paths())
    assert uploaded == expected, "every artifact file must be uploaded, and nothing else"
    initialize = INITIALIZE_ARTIFACT.split(".")[-1]
    assert not any(initialize in name for name in uploaded), "overwrote the image's own artifact"


# Agents reach the frontend only on the agents' address; the GUI port is published by no address
# of the EDR container.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_only_the_frontend_is_published_on_the_agents_address(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    stack_config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    agents = stack_config["hospital:addresses"]["agents"]
    edr = stack_config["hospital:edr"]

    ports = edr_container(recording).input("ports")

    assert [(p["ip"], p["external"], p["internal"]) for p in ports] == [
        (agents, edr["frontendPort"], FRONTEND_BIND_PORT)
    ], f"the EDR container publishes {ports}"
    assert all(p["internal"] != GUI_BIND_PORT for p in ports), "the GUI port is published"


# Other frontend and GUI ports move only the host side: the server still binds 8000 and 8889
# (the image's port variables only go into the URLs agents and browsers use), so the published
# port and the gateway's upstream point at the bound ports and the URLs at the chosen ones.
def test_chosen_ports_move_the_host_side_only(tmp_path: Path) -> None:
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["hospital:edr"].update(frontendPort=9443, guiPort=9889)
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))

    recording = run_program("prod", stack_file)

    container = edr_container(recording)
    environment = dict(line.split("=", 1) for line in container.input("envs"))
    gateway = next(c for c in recording.of_type(CONTAINER) if c.input("name").endswith("gateway"))
    nginx_conf = next(
        f.content for f in recording.uploaded_files(gateway) if f.file.endswith(".conf")
    )
    assert [(p["external"], p["internal"]) for p in container.input("ports")] == [(9443, 8000)]
    assert (environment["VELOCIRAPTOR_FRONTEND_PORT"], environment["VELOCIRAPTOR_GUI_PORT"]) == (
        "9443",
        "9889",
    )
    assert f"velociraptor:{GUI_BIND_PORT}" in nginx_conf, "the gateway must reach the bound port"
    assert recording.export("edr")["guiUrl"].endswith(":9889/"), recording.export("edr")["guiUrl"]


# The GUI is served by the gateway on the management address, and by nothing on other addresses.
def test_gui_is_reached_only_through_the_gateway_on_management(prod_recording: Recording) -> None:
    stack_config = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"]
    management = stack_config["hospital:addresses"]["management"]
    gui_port = stack_config["hospital:edr"]["guiPort"]

    published = [
        (container.name, port["ip"], port["external"])
        for container in prod_recording.of_type(CONTAINER)
        for port in container.input("ports") or []
    ]

    gui = [entry for entry in published if entry[2] == gui_port]
    assert gui == [("gateway", management, gui_port)], f"GUI port published as {gui}"
    assert (
        prod_recording.export("endpoints")["edr"] == f"https://edr.hospital.example.org:{gui_port}/"
    )


# The server joins the security zone only: no route into the clinical or data zones.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_server_lives_in_the_security_zone_only(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    container = edr_container(recording)

    networks = [network["name"] for network in container.input("networksAdvanced")]
    assert networks == [f"hospital-{stack}-security"], f"EDR joins {networks}"


# The health check asks the monitoring endpoint with the image's busybox wget (no curl there).
def test_health_check_reads_the_metrics_endpoint(prod_recording: Recording) -> None:
    health = edr_container(prod_recording).input("healthcheck")

    assert health["tests"][:2] == ["CMD", "wget"], f"health check is {health['tests']}"
    assert health["tests"][-1] == "http://127.0.0.1:8003/metrics"


# The baseline holds: no capabilities, no new privileges, a memory limit per stack. (The root
# file system stays writable: what the image writes outside its volumes is not known here.)
@pytest.mark.parametrize(("stack", "memory"), [("dev", 512), ("prod", 2048)])
def test_server_runs_hardened(stack: str, memory: int, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    container = edr_container(recording)

    assert container.input("capabilities") == {"drops": ["ALL"]}, "capabilities were added"
    assert container.input("securityOpts") == ["no-new-privileges:true"]
    assert container.input("memory") == memory
    assert not container.input("privileged"), "the EDR server must not be privileged"


# A Velociraptor release older than 0.77.3 is refused with the key that set it.
def test_vulnerable_release_is_refused(tmp_path: Path) -> None:
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["hospital:edr"]["image"] = "ghcr.io/velocidex/velociraptor-server:0.77.2"
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))

    with pytest.raises(Exception) as raised:
        run_program("prod", stack_file)

    assert "hospital:edr.image" in str(raised.value), f"error does not name the key: {raised.value}"


# Turning off client packages uses the image's own switch, and only then.
def test_client_packages_switch_uses_the_image_variable() -> None:
    built = server_environment(hostname="10.0.0.1", frontend_port=8000, gui_port=8889)
    skipped = server_environment(
        hostname="10.0.0.1", frontend_port=8000, gui_port=8889, build_client_packages=False
    )

    assert "VELOCIRAPTOR_NO_INITIALIZE" not in built, "packages would never be built"
    assert skipped["VELOCIRAPTOR_NO_INITIALIZE"] == "TRUE"


# ---- the artifacts -----------------------------------------------------------------------------


# Each file is one artifact named after the file, outside the built-in namespaces, with a type,
# a description, typed parameters and sources that each hold a query.
@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_artifact_follows_the_artifact_schema(path: Path) -> None:
    definition = load(path)

    assert definition["name"] == path.stem, "file name and artifact name differ"
    assert re.fullmatch(r"Hospital\.(Server|Client)\.[A-Z][A-Za-z]+", definition["name"])
    assert definition["name"].split(".")[0] not in BUILT_IN_NAMESPACES
    assert definition["type"] in ARTIFACT_TYPES, f"unknown type {definition['type']}"
    assert len(definition["description"].strip()) > 40, "description says too little"
    unknown_keys = set(definition) - {
        "name",
        "description",
        "author",
        "type",
        "precondition",
        "parameters",
        "sources",
    }
    assert not unknown_keys, f"keys the artifact schema does not have: {unknown_keys}"
    for parameter in definition.get("parameters", []):
        assert re.fullmatch(r"[A-Z][A-Za-z]+", parameter["name"]), parameter["name"]
        assert parameter.get("type", "string") in PARAMETER_TYPES, parameter
        assert isinstance(parameter.get("default", ""), str), f"{parameter['name']} not a string"
        assert parameter.get("description"), f"{parameter['name']} has no description"
    assert definition["sources"], "no sources"
    assert all(source.get("query", "").strip() for source in definition["sources"])


# Calls that need the server's own state (event queues, the alert queue, the client index) or
# probe the gateway appear only in artifacts of a server type.
@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_server_only_calls_run_in_server_artifacts(path: Path) -> None:
    definition = load(path)

    misplaced = called(definition) & SERVER_ONLY_VQL

    if definition["type"] not in SERVER_TYPES:
        assert not misplaced, f"{definition['type']} artifact calls server-only {misplaced}"


# Calls that read the host's files (logs, the audit log) appear only in artifacts of a client
# type: on the server they would read the server container's own files.
@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_host_file_calls_run_in_client_artifacts(path: Path) -> None:
    definition = load(path)

    misplaced = called(definition) & CLIENT_ONLY_VQL

    if definition["type"] not in CLIENT_TYPES:
        assert not misplaced, f"{definition['type']} artifact reads host files with {misplaced}"


# Every call of every artifact has a declared place, so a new plugin cannot pass the two checks
# above without being classified.
def test_every_artifact_call_has_a_declared_place() -> None:
    used = {function for path in artifact_paths() for function in called(load(path))}

    unplaced = used - SERVER_ONLY_VQL - CLIENT_ONLY_VQL - ANYWHERE_VQL

    assert not unplaced, f"calls with no declared place: {unplaced}"


# Client artifacts run only on Linux agents (the Docker host); server artifacts need no
# precondition.
@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_client_artifacts_run_on_linux_agents_only(path: Path) -> None:
    definition = load(path)

    precondition = definition.get("precondition")

    if definition["type"] in CLIENT_TYPES:
        assert precondition, "a client artifact without a precondition runs on every agent"
        assert re.fullmatch(r"SELECT .+ FROM info\(\) WHERE OS = 'linux'", precondition)
    else:
        assert precondition is None, "server artifacts need no precondition"


# Every call is a documented VQL plugin or function with documented arguments only.
@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_artifact_calls_only_documented_vql(path: Path) -> None:
    definition = load(path)

    for query in queries(definition):
        for function, arguments in calls(query):
            assert function in DOCUMENTED_VQL, f"{function}() is not in the documented allow-list"
            documented = DOCUMENTED_VQL[function]
            if documented is not None:
                extra = top_level_arguments(arguments) - documented
                assert not extra, f"{function}() has no argument(s) {extra}"


# Parentheses, braces and brackets balance, and each statement either selects FROM something or
# stores one expression (`LET name <= dict(...)`, VQL's way to keep a value for the whole query).
@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_artifact_query_is_well_formed(path: Path) -> None:
    definition = load(path)

    for query in [*queries(definition), definition.get("precondition", "SELECT 1 FROM scope()")]:
        text = without_literals(query)
        stack: list[str] = []
        for character in text:
            if character in "({[":
                stack.append(character)
            elif character in ")}]":
                assert stack and "({["[")}]".index(character)] == stack.pop(), "unbalanced"
        assert not stack, f"unclosed {stack}"
        statements = [s for s in re.split(r"\n\s*\n", text.strip()) if s.strip()]
        for statement in statements:
            if re.match(r"\s*LET\s+\w+\s*<=", statement) and "SELECT" not in statement:
                continue
            assert re.search(r"\bSELECT\b[\s\S]+\bFROM\b", statement), statement
        final = statements[-1].lstrip()
        assert final.startswith("SELECT"), "the last statement must be the query that emits rows"


# Every bare name the query passes as an argument or compares against is a parameter, a LET, a
# column alias, a column of a CSV parameter or a documented plugin column; every parameter is used.
@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_artifact_refers_only_to_defined_names(path: Path) -> None:
    definition = load(path)
    parameters = {p["name"] for p in definition.get("parameters", [])}
    text = "\n".join(without_literals(query) for query in queries(definition))

    lets = set(re.findall(r"\bLET\s+([A-Za-z_][A-Za-z0-9_]*)", text))
    aliases = set(re.findall(r"\bAS\s+([A-Za-z_][A-Za-z0-9_]*)", text))
    csv_columns = {
        column
        for p in definition.get("parameters", [])
        if p.get("type") == "csv"
        for column in p["default"].splitlines()[0].split(",")
    }
    defined = parameters | lets | aliases | csv_columns | PLUGIN_COLUMNS | VQL_KEYWORDS
    used = set(re.findall(r"(?<![=!<>])=\s*([A-Za-z_][A-Za-z0-9_]*)(?![\w(])", text))
    used |= set(re.findall(r"=~\s*([A-Za-z_][A-Za-z0-9_]*)(?![\w(])", text))

    assert used - defined == set(), f"undefined names {used - defined}"
    unused = {name for name in parameters if not re.search(rf"\b{name}\b", text)}
    assert not unused, f"parameters the query never reads: {unused}"


# Event artifacts never end: their query is driven by an event plugin. Collections end: an event
# plugin in one would keep the collection running until it times out.
@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_event_artifacts_and_only_they_use_event_plugins(path: Path) -> None:
    definition = load(path)

    plugins = called(definition) & EVENT_PLUGINS

    if definition["type"].endswith("_EVENT"):
        assert plugins, f"{definition['name']} uses no event plugin"
    else:
        assert not plugins, f"collection {definition['name']} uses event plugins {plugins}"


# The monitoring tables and the event exports take each artifact by its type, whatever its name.
def test_monitoring_tables_follow_the_artifact_type() -> None:
    types = {"Hospital.Server.Misnamed": "CLIENT_EVENT", "Hospital.Client.Other": "SERVER_EVENT"}

    server_step, client_step, _ = monitoring_setup(types)

    assert server_step.endswith("add Hospital.Client.Other"), server_step
    assert client_step.endswith("add Hospital.Server.Misnamed"), client_step


# Velociraptor suppresses a repeated alert by its name alone (dedup), so an alert's name carries
# every column that tells two incidents apart: a second address, client or service within the
# window is alerted, not hidden. Every artifact that raises an alert is listed here.
ALERT_KEY_COLUMNS = {
    "Hospital.Server.FailedLoginAlerts": {"Address", "Client"},
    "Hospital.Server.DicomTraffic": {"CallingAET"},
    "Hospital.Server.ServiceHealth": {"Service"},
    "Hospital.Server.CertificateExpiry": set(),
}


@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_alert_names_tell_incidents_apart(path: Path) -> None:
    definition = load(path)

    alerts = arguments_of(definition, "alert")

    if not alerts:
        assert definition["name"] not in ALERT_KEY_COLUMNS, "the listed alert is gone"
        return
    assert definition["name"] in ALERT_KEY_COLUMNS, "a new alert needs its incident columns"
    for arguments in alerts:
        named_by = set(re.findall(r"\b[A-Za-z_]\w*\b", argument(arguments, "name") or ""))
        missing = ALERT_KEY_COLUMNS[definition["name"]] - named_by
        assert not missing, f"the alert name leaves out {missing}: one incident hides the next"


# A failed probe raises the service's alert, and a healthy one does not.
def test_service_health_alerts_when_a_probe_fails() -> None:
    definition = load(ARTIFACTS_SOURCE / "Hospital.Server.ServiceHealth.yaml")

    (arguments,) = arguments_of(definition, "alert")

    condition = argument(arguments, "condition")
    assert condition is not None and re.fullmatch(r"NOT\s+Healthy", condition), condition


# The certificate, the services and the PACS are checked as soon as the artifact starts, not one
# period (a day for the certificate) later: their clock starts at a time in the past.
@pytest.mark.parametrize(
    "name",
    [
        "Hospital.Server.CertificateExpiry",
        "Hospital.Server.ServiceHealth",
        "Hospital.Server.DicomTraffic",
    ],
)
def test_periodic_checks_run_at_start(name: str) -> None:
    definition = load(ARTIFACTS_SOURCE / f"{name}.yaml")

    clocks = arguments_of(definition, "clock")

    assert clocks, "no clock drives the checks"
    assert all(argument(clock, "start") == "0" for clock in clocks), clocks


# A PHI access event names the volume (from its rule key) and the file: watch_auditd joins the
# SYSCALL, CWD and PATH records of one event by serial, which line-by-line tailing cannot.
def test_phi_access_events_name_the_volume_and_the_file() -> None:
    definition = load(ARTIFACTS_SOURCE / "Hospital.Client.PhiFileAccess.yaml")
    query = queries(definition)[0]

    final = query[query.rindex("SELECT") : query.index("FROM scope()")]
    columns = {re.split(r"\s+AS\s+", c.strip())[-1] for c in final[6:].split(",")}

    assert "watch_auditd" in called(definition), "audit records are not joined by event"
    assert "watch_syslog" not in called(definition), "single lines have no file name"
    assert {"AuditKey", "Volume", "Path", "Program", "AccessedAt"} <= columns, columns
    assert re.search(r"\bKey\s+IN\s+Tags\b", query), "events are not matched to rule keys"


# watch_monitoring watches the queue of a client event artifact we ship, never file paths.
def test_failed_login_alerts_watch_the_client_event_queue() -> None:
    alerts = load(ARTIFACTS_SOURCE / "Hospital.Server.FailedLoginAlerts.yaml")
    watched = next(p["default"] for p in alerts["parameters"] if p["name"] == "ClientArtifact")

    client = load(ARTIFACTS_SOURCE / f"{watched}.yaml")

    assert client["type"] == "CLIENT_EVENT", "watch_monitoring watches client event queues"
    assert "paths" not in top_level_arguments(
        next(args for f, args in calls(queries(alerts)[0]) if f == "watch_monitoring")
    )
    emitted = set(re.findall(r"\bAS\s+(\w+)", queries(client)[0])) | PLUGIN_COLUMNS
    read = {"OSPath", "SourceAddress", "Line"}
    assert read <= emitted, f"the alert reads columns the client never emits: {read - emitted}"


# Regex defaults stay inside RE2 (Go): no look-around, no back-references.
@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_regex_defaults_are_re2(path: Path) -> None:
    definition = load(path)

    for parameter in definition.get("parameters", []):
        if parameter.get("type") == "regex":
            pattern = parameter["default"]
            re.compile(pattern)
            assert not re.search(r"\(\?[=!<]|\\[1-9]", pattern), f"{parameter['name']} not RE2"


# The regular expressions written as string literals in the queries compile once VQL has
# unescaped them, and stay inside RE2.
@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_regex_literals_in_queries_compile(path: Path) -> None:
    text = "\n".join(queries(load(path)))

    patterns = [quoted for block in regex_lists(text) for quoted in STRING.findall(block)]
    patterns += re.findall(r"=~\s*" + STRING.pattern, text)

    for quoted in patterns:
        pattern = re.sub(r"\\(.)", r"\1", quoted[1:-1])
        re.compile(pattern)
        assert not re.search(r"\(\?[=!<][^P]", pattern), f"look-around is not RE2: {pattern}"
    calls_with_lists = text.count("parse_string_with_regex(")
    assert len(regex_lists(text)) == calls_with_lists, "a regex list was not found"


# The AE titles allowed to call the PACS are escaped for RE2 and match exactly; with no modality
# configured no calling AE title is allowed.
def test_allowed_aets_match_exactly() -> None:
    def allowed(aets: list[str]) -> re.Pattern:
        defaults = artifact_defaults(
            watched_sites=[],
            probe_period_seconds=300,
            root_ca_pem="",
            allowed_aets=aets,
            log_volumes={},
        )
        return re.compile(defaults[DICOM_TRAFFIC]["AllowedCallingAets"])

    modalities, nobody = allowed(["CT1", "MR.1", "READ ING"]), allowed([])

    assert all(modalities.search(aet) for aet in ["CT1", "MR.1", "READ ING"])
    assert not any(modalities.search(aet) for aet in ["MRX1", "CT12", "EVIL"]), "too permissive"
    assert not any(nobody.search(aet) for aet in ["CT1", "EVIL"]), "no modality allows a caller"
    assert re2_literal("A B") == "A B", "RE2 rejects an escaped space"


# The prod stack's uploaded artifacts carry the stack's values and still pass the schema checks.
def test_rendered_artifacts_carry_the_stack_values(prod_recording: Recording) -> None:
    uploads = {
        Path(upload["file"]).stem: yaml.safe_load(upload["content"])
        for upload in edr_container(prod_recording).input("uploads")
    }
    (ca,) = prod_recording.of_type("tls:index/selfSignedCert:SelfSignedCert")

    def default(artifact: str, name: str) -> str:
        return next(p["default"] for p in uploads[artifact]["parameters"] if p["name"] == name)

    targets = default("Hospital.Server.ServiceHealth", "Targets")
    assert "pacs,https://pacs.hospital.example.org:443/" in targets, targets
    assert default("Hospital.Server.ServiceHealth", "RootCA") == ca.output("certPem")
    assert default("Hospital.Server.CertificateExpiry", "ServerPemUrl").endswith(":8000/server.pem")
    assert default(DICOM_TRAFFIC, "AllowedCallingAets") == "^(CT1|MR1|READING1)$"
    for name, definition in uploads.items():
        assert definition == {
            **load(ARTIFACTS_SOURCE / f"{name}.yaml"),
            "parameters": definition["parameters"],
        }, f"{name}: rendering changed more than parameter defaults"


# A default for a parameter an artifact does not declare is a programming error, not a no-op.
def test_rendering_refuses_an_unknown_parameter() -> None:
    with pytest.raises(ValueError, match=r"Hospital\.Server\.ServiceHealth"):
        render_artifacts({"Hospital.Server.ServiceHealth": {"Tragets": "x"}})


# The probes go to each site's public HTTPS URL through the gateway, and the DICOM traffic polls
# to the PACS site's.
def test_service_probes_use_the_public_urls() -> None:
    emr = WebSite("emr", "emr.h.example", "openemr", 80, "clinical", "10.0.0.1", 443)
    pacs = WebSite("pacs", "pacs.h.example", "orthanc", 8042, "clinical", "10.0.0.1", 8443)

    defaults = artifact_defaults(
        watched_sites=[emr, pacs],
        probe_period_seconds=120,
        root_ca_pem="PEM",
        allowed_aets=[],
        log_volumes={},
    )

    assert defaults["Hospital.Server.ServiceHealth"]["Targets"].splitlines()[1:] == [
        "emr,https://emr.h.example:443/",
        "pacs,https://pacs.h.example:8443/",
    ]
    assert defaults["Hospital.Server.ServiceHealth"]["PeriodSeconds"] == "120"
    assert defaults[DICOM_TRAFFIC]["PacsUrl"] == "https://pacs.h.example:8443/", "not the PACS"
    assert defaults[DICOM_TRAFFIC]["RootCA"] == "PEM"


# ---- PACS DICOM traffic -----------------------------------------------------------------------

# Orthanc's REST API as the Orthanc Book documents it (users/rest, "Tracking changes"; faq,
# "How to find out where a DICOM instance originates from?"): the GET arguments of each route the
# artifact calls, the fields of a /changes answer and of one change, and an instance's origin
# metadata (?expand gives their values).
ORTHANC_ROUTES = {"changes": {"since", "limit", "last"}, "instances/%v/metadata": {"expand"}}
ORTHANC_ANSWER_FIELDS = {
    "ChangeLog": {"Changes", "Done", "Last"},
    "Metadata": {"ReceptionDate", "RemoteAET", "RemoteIP", "CalledAET", "Origin", "TransferSyntax"},
}
CHANGE_FIELDS = {"ChangeType", "ID", "Seq", "ResourceType", "Path", "Date"}


def dicom_traffic_query() -> str:
    """The artifact's query without its comments (none of its strings holds `//`)."""
    (query,) = queries(load(ARTIFACTS_SOURCE / f"{DICOM_TRAFFIC}.yaml"))
    return re.sub(r"//[^\n]*", "", query)


def raw_arguments(query: str, function: str) -> list[str]:
    """The argument text of every call of `function`, string literals kept."""
    return enclosed(query, rf"\b{function}\(", ")")


def edr_uploads(recording: Recording) -> dict[str, tuple[int, dict]]:
    """The EDR container's artifact uploads by artifact name, with their index in `uploads`."""
    return {
        Path(upload["file"]).stem: (index, upload)
        for index, upload in enumerate(edr_container(recording).input("uploads"))
    }


def generated_password(recording: Recording, account: str) -> str:
    (password,) = [
        p.output("result")
        for p in recording.of_type(PASSWORD)
        if p.input("keepers")["account"] == account
    ]
    return password


# The prod artifact polls the PACS's public name on the gateway's HTTPS port, trusts the stack's
# CA, and signs in as the Orthanc user of the probe account with that account's generated
# password, the very password Orthanc's own credentials file registers for that user.
def test_dicom_traffic_signs_in_to_the_pacs_as_the_probe_user(prod_recording: Recording) -> None:
    (_, upload) = edr_uploads(prod_recording)[DICOM_TRAFFIC]
    parameters = {p["name"]: p["default"] for p in yaml.safe_load(upload["content"])["parameters"]}
    pacs = prod_recording.named("pacs", CONTAINER)
    (credentials,) = [u for u in pacs.input("uploads") if u["file"].endswith("credentials.json")]
    (ca,) = prod_recording.of_type("tls:index/selfSignedCert:SelfSignedCert")
    stack_config = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"]
    public_name = urlsplit(prod_recording.export("endpoints")["pacs"]).hostname

    registered = json.loads(credentials["content"])["RegisteredUsers"]

    https_port = stack_config["hospital:gateway"]["httpsPort"]
    assert parameters["PacsUrl"] == f"https://{public_name}:{https_port}/", parameters["PacsUrl"]
    assert parameters["RootCA"] == ca.output("certPem"), "the gateway's CA is not trusted"
    assert parameters["User"] == USER_NAMES[PACS_MONITOR_ACCOUNT], parameters["User"]
    assert PACS_MONITOR_ACCOUNT != "pacs-admin", "the monitor must not be Orthanc's administrator"
    password = generated_password(prod_recording, PACS_MONITOR_ACCOUNT)
    assert parameters["Password"] == password, "not the generated password of the probe account"
    assert registered[parameters["User"]] == password, "Orthanc would refuse this login"


# The password sits only in the secret upload of the artifact that needs it: the other artifact
# files stay plain and hold no trace of it, and no plain output, export, log line, environment
# variable or command of the run shows it.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pacs_password_is_only_in_a_secret_upload(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    container = edr_container(recording)
    password = generated_password(recording, PACS_MONITOR_ACCOUNT)

    uploads = edr_uploads(recording)

    (index, upload) = uploads[DICOM_TRAFFIC]
    assert password in upload["content"], "the artifact does not carry the password"
    assert container.input_is_secret(f"uploads.{index}.content"), "the password file is plain"
    others = [name for name, (_, u) in uploads.items() if password in u["content"]]
    assert others == [DICOM_TRAFFIC], f"other artifact files hold the PACS password: {others}"
    assert not [where for where, text in recording.plain_strings() if password in text]
    assert not [log.message for log in recording.logs if password in log.message]
    assert not any(password in line for line in container.input("envs")), "password in the env"
    assert password not in " ".join(container.input("command")), "password on the command line"


# Whatever artifact declares a redacted parameter has a secret written into its defaults, so its
# file is uploaded as a secret; the others stay plain, where a reviewer can read them.
@pytest.mark.parametrize("path", artifact_paths(), ids=lambda path: path.stem)
def test_artifacts_with_a_redacted_parameter_are_secret_uploads(
    path: Path, prod_recording: Recording
) -> None:
    redacted = [p for p in load(path).get("parameters", []) if p.get("type") == "redacted"]

    (index, _) = edr_uploads(prod_recording)[path.stem]

    secret = edr_container(prod_recording).input_is_secret(f"uploads.{index}.content")
    assert secret is bool(redacted), f"{path.stem}: secret upload {secret}, redacted {redacted}"


# The artifact calls Orthanc's documented routes with their documented arguments only, always as
# a GET through the gateway's TLS checked against the stack's CA, and with the basic-auth header.
# The query string goes in `params` (http_client replaces a query written into the URL), and the
# URL never holds a credential: http_client logs every URL it fetches.
def test_dicom_traffic_calls_documented_orthanc_routes() -> None:
    query = dicom_traffic_query()

    requests = raw_arguments(query, "http_client")

    assert len(requests) == 3, f"expected the newest change, a page and metadata: {requests}"
    for arguments in requests:
        url = re.fullmatch(
            r'format\(format="%v([^"]*)", args=\[?PacsUrl\b.*', argument(arguments, "url")
        )
        assert url, f"not a path under PacsUrl: {arguments}"
        route = url.group(1)
        assert route in ORTHANC_ROUTES, f"undocumented route {route}"
        params = re.fullmatch(r"dict\((.*)\)", argument(arguments, "params") or "", re.S)
        assert params and top_level_arguments(params.group(1)) <= ORTHANC_ROUTES[route], arguments
        assert argument(arguments, "method") == '"GET"', arguments
        assert argument(arguments, "root_ca") == "RootCA", "the gateway's certificate is unchecked"
        assert argument(arguments, "headers") == "auth", "a request without the credentials"
        assert not {"skip_verify", "disable_ssl_security"} & top_level_arguments(arguments)
    header = re.sub(r"\s+", "", query[query.index("LET auth") : query.index("LET cursor")])
    basic = 'dict(Authorization=format(format="Basic%v",args=base64encode(string=format('
    assert header.startswith(f"LETauth<={basic}" + 'format="%v:%v",args=[User,Password]'), header
    assert len(re.findall(r"\bPassword\b", query)) == 1, "the password is used beyond the header"


# The artifact reads only the answer fields the Orthanc Book documents, and reports the instances
# that NewInstance changes name.
def test_dicom_traffic_reads_documented_orthanc_fields() -> None:
    query = dicom_traffic_query()

    for answer, fields in ORTHANC_ANSWER_FIELDS.items():
        read = set(re.findall(rf"\b{answer}\.(\w+)", query))
        assert read and read <= fields, f"{answer}: undocumented fields {read - fields}"
    change = query[query.index("row=Changes") :]
    change = change[: change.index("})")]
    read = set(re.findall(r"\bSELECT\s+(\w+)\s+AS\b", change))
    read |= set(re.findall(r"\bWHERE\s+(\w+)\s*=", change))
    assert read and read <= CHANGE_FIELDS, f"undocumented change fields {read - CHANGE_FIELDS}"
    assert re.search(r'\bChangeType\s*=\s*"NewInstance"', change), "not only stored instances"


# The cursor is one value kept for the artifact's whole life: it is placed once on the newest
# change (`last`), so history is not replayed, every page asks for the changes after it, and each
# answer moves it to the answer's Last.
def test_dicom_traffic_keeps_its_cursor_between_polls() -> None:
    query = dicom_traffic_query()

    sets = raw_arguments(query, "set")

    assert re.search(r"\bLET cursor <= dict\(", query), "the cursor is not one stored value"
    assert sets and all(argument(a, "item") == "cursor" for a in sets), "set() on another item"
    since = [argument(a, "value") for a in sets if argument(a, "field") == '"Since"']
    assert since and all(value == "int(int=ChangeLog.Last)" for value in since), since
    placed = query[query.index("LET newest_change") : query.index("LET next_changes")]
    assert 'params=dict(last="true")' in placed, "the cursor does not start at the newest change"
    page = query[query.index("LET next_changes") : query.index("LET cursor_ready")]
    assert "params=dict(since=cursor.Since, limit=PageSize)" in page, page
    assert re.search(r"if\(\s*condition=cursor\.Placed", query), "pages are read before placing"


# An instance is Unexpected when it came over DICOM from a calling AE title that the allowed AE
# titles do not list, and only then an alert is raised; the rendered prod list is exactly the
# configured modalities' AE titles.
def test_unexpected_senders_are_flagged_and_alerted(prod_recording: Recording) -> None:
    query = re.sub(r"\s+", " ", dicom_traffic_query())
    stack_config = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"]
    modalities = [m["aet"] for m in stack_config["hospital:pacs"]["modalities"].values()]
    (_, upload) = edr_uploads(prod_recording)[DICOM_TRAFFIC]
    parameters = {p["name"]: p["default"] for p in yaml.safe_load(upload["content"])["parameters"]}

    allowed = re.compile(parameters["AllowedCallingAets"])

    assert re.search(
        r'Metadata\.Origin = "DicomProtocol" AND NOT Metadata\.RemoteAET =~ AllowedCallingAets '
        r"AS Unexpected\b",
        query,
    ), "Unexpected is not a DICOM sender outside the allowed AE titles"
    (alert,) = raw_arguments(query, "alert")
    assert argument(alert, "condition") == "Unexpected", alert
    assert all(allowed.fullmatch(aet) for aet in modalities), "a configured modality is flagged"
    assert not allowed.search("INTRUDER") and not allowed.search(""), "an unknown AET passes"


# The export names the credential account whose password each artifact carries, and it is one of
# the stack's accounts; only the artifacts uploaded as secrets carry one.
def test_artifact_accounts_name_the_credential_they_carry(prod_recording: Recording) -> None:
    edr = prod_recording.export("edr")

    accounts = edr["artifactAccounts"]

    assert accounts == {DICOM_TRAFFIC: PACS_MONITOR_ACCOUNT}, accounts
    assert set(accounts.values()) <= set(prod_recording.export("credentialAccounts"))
    assert set(accounts) == artifacts_with_secrets(), "an artifact with a secret is unlisted"


# ---- certificate lifetime, exports, dev and prod ----------------------------------------------


# With an issue date recorded, the export says when the certificate expires and when to renew.
def test_certificate_expiry_follows_the_recorded_issue_date() -> None:
    edr = EdrSettings(certificate_issued=datetime.date(2026, 1, 10))

    described = server_certificate(edr, early_renewal_days=30, agents_address="10.40.0.10")

    assert described["notAfter"] == "2027-01-10"
    assert described["renewFrom"] == "2026-12-11"
    assert described["status"] == "recorded"


# prod warns when the date is unknown or renewal is due; dev stays quiet until something is due.
@pytest.mark.parametrize(
    ("issued", "today", "is_prod", "warned"),
    [
        (None, datetime.date(2026, 6, 1), True, "not recorded"),
        (None, datetime.date(2026, 6, 1), False, None),
        (datetime.date(2026, 1, 10), datetime.date(2026, 6, 1), True, None),
        (datetime.date(2026, 1, 10), datetime.date(2026, 12, 20), False, "reissue it now"),
        (datetime.date(2026, 1, 10), datetime.date(2027, 1, 10), True, "expired"),
    ],
)
def test_certificate_warnings(issued, today, is_prod: bool, warned: str | None) -> None:
    certificate = server_certificate(EdrSettings(certificate_issued=issued), 30, "10.40.0.10")

    warnings = certificate_warnings(certificate, today, is_prod)

    if warned is None:
        assert warnings == [], f"unexpected warning {warnings}"
    else:
        assert len(warnings) == 1 and warned in warnings[0], warnings


# An issue date in the future is a typo, refused before anything is built.
def test_future_issue_date_is_refused() -> None:
    with pytest.raises(ValueError, match="future"):
        EdrSettings(certificate_issued=datetime.date.today() + datetime.timedelta(days=1))


# The committed prod stack reports the certificate as unrecorded and tells how to read it.
def test_prod_export_describes_certificate_and_enrolment(prod_recording: Recording) -> None:
    edr = prod_recording.export("edr")

    assert edr["serverCertificate"]["status"] == "unrecorded"
    assert "server.pem" in edr["serverCertificate"]["check"]
    assert edr["agentFrontendUrl"] == "https://10.40.0.10:8000/"
    assert edr["enrolment"]["serverUrl"] == edr["agentFrontendUrl"]
    assert edr["enrolment"]["clientConfigCommand"].startswith("docker exec hospital-prod-edr ")
    assert "config client" in edr["enrolment"]["clientConfigCommand"]
    assert edr["guiUrl"] == "https://edr.hospital.example.org:8889/"
    assert edr["guiAddress"] == "10.40.9.10"
    assert edr["artifacts"] == sorted(path.stem for path in artifact_paths())
    setup = "\n".join(edr["monitoringSetup"])
    assert all(name in setup for name in edr["artifacts"]), "an artifact is never switched on"
    assert any("not recorded" in log.message for log in prod_recording.logs), "no warning"


# The exported check prints the issue date the stack records (notBefore) as well as the expiry,
# and the export and the prod warning say which of the two to record.
def test_certificate_check_prints_the_issue_date_to_record(prod_recording: Recording) -> None:
    certificate = prod_recording.export("edr")["serverCertificate"]

    printed = re.search(r"openssl x509 -noout((?: -\w+)+)$", certificate["check"])

    assert printed and set(printed.group(1).split()) == {"-startdate", "-enddate"}, printed
    assert "notBefore" in certificate["record"], certificate["record"]
    assert "hospital:edr.certificateIssued" in certificate["record"]
    warning = next(log.message for log in prod_recording.logs if "not recorded" in log.message)
    assert "notBefore" in warning and "-startdate" in warning, warning


# Enrolment first copies the server's own velociraptor binary out of the server container (the
# image keeps it at /bin/velociraptor), then builds the agent package with that copy.
def test_enrolment_copies_the_servers_binary_before_packaging(prod_recording: Recording) -> None:
    enrolment = prod_recording.export("edr")["enrolment"]
    steps = enrolment["hostInstall"]

    copy = steps.index(enrolment["binaryCommand"])

    package = steps.index(enrolment["debianPackageCommand"])
    assert enrolment["binaryCommand"].startswith(
        "docker cp hospital-prod-edr:/bin/velociraptor ./velociraptor"
    ), enrolment["binaryCommand"]
    assert copy < package, "the package is built before the binary is there"
    assert steps[package].startswith("./velociraptor "), "packaged with another velociraptor"
    assert steps.index(enrolment["clientConfigCommand"]) < package


# A recorded issue date flows from the stack file into the export.
def test_recorded_issue_date_reaches_the_export(tmp_path: Path) -> None:
    recording = mutated_prod(tmp_path, certificateIssued="2026-11-01")

    certificate = recording.export("edr")["serverCertificate"]

    assert certificate["notAfter"] == "2027-11-01", certificate


def rule_keys(rules: list[str]) -> dict[str, str]:
    """Volume by key, read from exported audit rules."""
    parsed = [
        re.fullmatch(r"-w /var/lib/docker/volumes/(\S+)/_data -p rwa -k (\S+)", r) for r in rules
    ]
    assert all(parsed), f"malformed rules {rules}"
    return {match.group(2): match.group(1) for match in parsed if match}


# The audit rules watch every patient-data volume of the other services, not the EDR's own, each
# with a key of its own that auditctl accepts (at most 31 bytes).
def test_audit_rules_cover_the_patient_data_volumes(prod_recording: Recording) -> None:
    phi = {
        volume.input("name")
        for volume in prod_recording.of_type(VOLUME)
        if labels(volume)["hospital.data-class"] == "phi"
        and labels(volume)["hospital.service"] != "edr"
    }

    rules = prod_recording.export("edr")["auditRules"]

    keys = rule_keys(rules)
    assert phi, "the prod stack has no patient-data volume"
    assert sorted(keys.values()) == sorted(phi), f"rules watch {sorted(keys.values())}"
    assert len(keys) == len(rules), "two volumes share a key: an event cannot name its volume"
    assert all(len(key.encode()) <= AUDIT_KEY_MAX_BYTES for key in keys), keys


# A volume name too long for a readable key still gets a short key of its own.
def test_long_volume_names_get_short_distinct_keys() -> None:
    volumes = [
        "hospital-regional-campus-north-database-data",
        "hospital-regional-campus-north-database-files",
    ]

    keys = phi_audit_keys(volumes)

    assert all(len(key.encode()) <= AUDIT_KEY_MAX_BYTES for key in keys.values()), keys
    assert len(set(keys.values())) == 2, f"keys collide: {keys}"
    assert phi_audit_keys(["hospital-prod-emr-sites"]) == {
        "hospital-prod-emr-sites": "phi-prod-emr-sites"
    }


# The rendered PhiFileAccess artifact maps exactly the exported rules' keys to their volumes.
def test_phi_artifact_and_audit_rules_agree(prod_recording: Recording) -> None:
    uploads = {
        Path(upload["file"]).stem: yaml.safe_load(upload["content"])
        for upload in edr_container(prod_recording).input("uploads")
    }
    parameters = uploads["Hospital.Client.PhiFileAccess"]["parameters"]

    table = next(p["default"] for p in parameters if p["name"] == "AuditKeys")

    rows = list(csv.DictReader(io.StringIO(table)))
    rules = prod_recording.export("edr")["auditRules"]
    assert {row["Key"]: row["Volume"] for row in rows} == rule_keys(rules)
    assert len(rows) == len(rules), "a key appears twice in the artifact's table"


# Rules and table come from one mapping, also for volumes the committed stacks do not have.
def test_audit_rules_and_key_table_share_one_mapping() -> None:
    volumes = ["hospital-x-pacs-storage", "hospital-a-really-long-stack-name-database-data"]

    table = artifact_defaults(
        watched_sites=[],
        probe_period_seconds=300,
        root_ca_pem="",
        allowed_aets=[],
        log_volumes={},
        phi_volumes=volumes,
    )["Hospital.Client.PhiFileAccess"]["AuditKeys"]

    rows = {row["Key"]: row["Volume"] for row in csv.DictReader(io.StringIO(table))}
    assert rows == rule_keys(audit_rules(volumes))


# prod tells the operator at every `pulumi up` that the certificate's issue date is missing;
# dev, a lab, stays quiet about it.
@pytest.mark.parametrize(("stack", "warned"), [("dev", False), ("prod", True)])
def test_unrecorded_certificate_is_a_prod_warning(stack: str, warned: bool, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    warnings = [
        log.message
        for log in recording.logs
        if log.severity.startswith("warn") and "certificateIssued" in log.message
    ]

    assert bool(warnings) is warned, f"{stack} warnings: {warnings}"


# dev binds everything to loopback; the GUI site follows each stack's management address.
@pytest.mark.parametrize(("stack", "address"), [("dev", "127.0.0.1"), ("prod", "10.40.9.10")])
def test_gui_site_listens_on_the_management_address(stack: str, address: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")

    edr = recording.export("edr")

    assert edr["guiAddress"] == address
    assert environment(edr_container(recording))["VELOCIRAPTOR_HOSTNAME"] == (
        "127.0.0.1" if stack == "dev" else "10.40.0.10"
    ), "agents are told a different address than the one the frontend is published on"


# No secret of the run shows up in any plain export or plain output.
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_secret_in_plain_outputs(stack: str, request) -> None:
    recording: Recording = request.getfixturevalue(f"{stack}_recording")
    secrets = [value for value in recording.secret_values() if len(value) >= 8]

    leaks = [
        where for where, text in recording.plain_strings() for secret in secrets if secret in text
    ]

    assert not leaks, f"secrets in plain outputs at {leaks[:5]}"
    assert not recording.exports["edr"].holds_secret(), "the edr export must hold no secret"
    assert "edr-admin" in recording.export("credentialAccounts")

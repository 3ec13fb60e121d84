"""The offline preview: recording, provider stand-in, secrecy and the plan command."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import random
import string
from datetime import timedelta
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pulumi.runtime.mocks import MockResourceArgs
from pulumi.runtime.rpc import UNKNOWN

from tools.__main__ import main as tools_main
from tools.preview import PreviewFailed, run_program
from tools.provider_standin import ProviderStandIn, StandInError
from tools.recording import REDACTED
from tools.stack_config import StackConfigError
from tools.standin_random import DEFAULT_SPECIAL, RandomInputError, random_string_result
from tools.standin_tls import private_key

SERVICE = "toy:components:Service"
CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
PASSWORD = "random:index/randomPassword:RandomPassword"
CA_CERT = "tls:index/selfSignedCert:SelfSignedCert"
LEAF_CERT = "tls:index/locallySignedCert:LocallySignedCert"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"


def certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


# Every resource of the component is recorded under it; the component sits under the stack.
def test_recording_keeps_component_parents(toy_recording):
    (service,) = toy_recording.of_type(SERVICE)

    children = toy_recording.children(service)

    assert service.parent is None, f"component parent should be the stack, got {service.parent}"
    assert len(children) == 9, f"expected 9 children, got {[c.name for c in children]}"
    assert all(child.parent == service.urn for child in children), "a child lost its parent"


# Dependencies come from depends_on and from every Output used as an input.
def test_recording_keeps_dependencies(toy_recording):
    container = toy_recording.named("web", CONTAINER)
    network = toy_recording.named("clinical", NETWORK)
    image = toy_recording.named("web-image", REMOTE_IMAGE)
    password = toy_recording.named("db-password", PASSWORD)

    dependencies = set(container.dependencies)

    assert {network.urn, image.urn, password.urn} <= dependencies, dependencies
    assert container.property_dependencies["image"] == (image.urn,), "image input lost its source"


# Inputs carry the provider schema's camelCase names, as CrossGuard policies see them.
def test_inputs_use_schema_camel_case_names(toy_recording):
    container = toy_recording.named("web", CONTAINER)

    assert container.input("readOnly") is True, container.inputs.keys()
    assert container.input("networksAdvanced.0.aliases") == ["web"]
    assert container.input("ports.0.internal") == 443, container.input("ports")
    assert "read_only" not in container.inputs, "snake_case names leaked into the inputs"


# The leaf is issued by the CA, with the SANs, usages and validity it asked for.
def test_leaf_certificate_verifies_against_the_ca_with_its_sans_and_usages(toy_recording):
    ca = certificate(toy_recording.named("ca").output("certPem"))
    leaf_resource = toy_recording.named("web-cert")
    leaf = certificate(leaf_resource.output("certPem"))

    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value

    assert sans.get_values_for_type(x509.DNSName) == ["web.hospital.test", "web"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    assert set(extended) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert constraints.ca is False, "a leaf must not be a CA"
    assert aki.key_identifier == ski.digest, "leaf does not name its CA's key"
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == timedelta(days=90), f"validity is {lifetime}, asked for 90 days"
    assert leaf_resource.output("validityEndTime") == leaf.not_valid_after_utc.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    ), "validityEndTime does not match the certificate"
    assert leaf_resource.output("readyForRenewal") is False
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "web.hospital.test"


# The CA is a P-384 CA certificate with the requested subject and signing usages.
def test_ca_certificate_is_a_ca_with_the_requested_key_and_subject(toy_recording):
    ca = certificate(toy_recording.named("ca").output("certPem"))

    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value

    assert constraints.value.ca and constraints.critical, "CA flag missing or not critical"
    assert usage.key_cert_sign and usage.crl_sign
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp384r1", ca.public_key().curve.name
    assert ca.subject.rfc4514_string() == "CN=Toy Hospital CA,O=Toy Hospital,C=DE"
    ca.verify_directly_issued_by(ca)


# Keys follow algorithm, curve and size, with the provider's defaults when unset.
@pytest.mark.parametrize(
    ("inputs", "expected_type", "size"),
    [
        ({"algorithm": "RSA"}, rsa.RSAPrivateKey, 2048),
        ({"algorithm": "ECDSA"}, ec.EllipticCurvePrivateKey, 224),
        ({"algorithm": "ECDSA", "ecdsaCurve": "P521"}, ec.EllipticCurvePrivateKey, 521),
        ({"algorithm": "ED25519"}, ed25519.Ed25519PrivateKey, None),
    ],
)
def test_private_key_follows_algorithm_and_defaults(inputs, expected_type, size):
    from cryptography.hazmat.primitives import serialization

    _, outputs = private_key(inputs, random.Random(1), None)

    key = serialization.load_pem_private_key(outputs["privateKeyPem"]["value"].encode(), None)
    assert isinstance(key, expected_type), type(key)
    if size is not None:
        assert key.key_size == size, f"{inputs} gave a {key.key_size}-bit key"
    has_ssh = size != 224
    assert bool(outputs["publicKeyOpenssh"]) is has_ssh, "SSH form present/absent wrongly"
    assert outputs["publicKeyFingerprintSha256"].startswith("SHA256:") is has_ssh


# The toy password meets its length and every minimum, and only uses allowed specials.
def test_password_meets_its_minimums_and_is_secret(toy_recording):
    password = toy_recording.named("db-password")

    result = password.output("result")

    assert len(result) == 20, f"length {len(result)}"
    assert sum(c.isupper() for c in result) >= 2, "fewer than 2 upper-case letters"
    assert sum(c.islower() for c in result) >= 2, "fewer than 2 lower-case letters"
    assert sum(c.isdigit() for c in result) >= 2, "fewer than 2 digits"
    assert sum(c in "-_." for c in result) >= 2, "fewer than 2 special characters"
    outside = set(result) - set(string.ascii_letters + string.digits + "-_.")
    assert not outside, f"characters outside the allowed classes: {outside}"
    assert password.output_is_secret("result") and password.output_is_secret("bcryptHash")
    assert bcrypt.checkpw(result.encode(), password.output("bcryptHash").encode())


# The generator honours class switches and minimums over many draws, and refuses the impossible.
def test_password_generator_honours_switches_and_minimums():
    inputs = {"length": 12, "special": False, "minNumeric": 5, "minUpper": 3}

    results = [random_string_result(inputs, random.Random(seed)) for seed in range(200)]

    for result in results:
        assert not set(result) & set(DEFAULT_SPECIAL), f"special character in {result!r}"
        assert sum(c.isdigit() for c in result) >= 5 and sum(c.isupper() for c in result) >= 3
    with pytest.raises(RandomInputError, match="sum of the minimums"):
        random_string_result({"length": 4, "minUpper": 3, "minLower": 3}, random.Random(0))


# A secret list element or nested field is recorded at its own path, and stays secret.
def test_secret_inputs_are_recorded_at_their_exact_paths(toy_recording):
    container = toy_recording.named("web", CONTAINER)

    assert container.secret_inputs == {"envs.0", "uploads.0.content"}, container.secret_inputs
    assert container.input_is_secret("uploads.0.content")
    assert not container.input_is_secret("uploads.1.content"), "the certificate became secret"
    assert container.input_holds_secret("envs") and not container.input_is_secret("envs.1")
    assert container.output_is_secret("envs.0"), "echoed secret input lost its secrecy"


# The JSON view never holds a secret string, and marks every secret it hides.
def test_redacted_view_holds_no_secret(toy_recording):
    secrets = list(toy_recording.secret_values())

    text = json.dumps(toy_recording.redacted())

    assert len(secrets) >= 8, f"too few secrets found to prove anything: {len(secrets)}"
    leaked = [s[:6] + "…" for s in secrets if s in text]
    assert not leaked, f"secrets visible in the redacted view: {leaked}"
    exports = toy_recording.redacted()["exports"]
    assert exports["dbPassword"] == {"value": REDACTED, "secret": True}
    assert exports["web"]["value"]["password"] == REDACTED, "nested secret export shown"


# Secrets are collected from outputs, inputs and exports alike.
def test_secret_values_cover_keys_passwords_and_exports(toy_recording):
    secrets = set(toy_recording.secret_values())
    password = toy_recording.named("db-password").output("result")

    assert password in secrets
    assert f"DB_PASSWORD={password}" in secrets, "secret env entry not collected"
    for key in toy_recording.of_type(PRIVATE_KEY):
        assert key.output("privateKeyPem") in secrets, f"{key.name} private key not collected"
    assert not toy_recording.exports["caCertPem"].holds_secret()


# No secret string shows up in any plain output or export, even inside a longer value.
def test_no_secret_appears_in_plain_outputs_or_exports(toy_recording):
    secrets = [s for s in toy_recording.secret_values() if len(s) >= 8]

    leaks = [
        where
        for where, text in toy_recording.plain_strings()
        if any(secret in text for secret in secrets)
    ]

    assert secrets, "no secrets to look for"
    assert not leaks, f"secret text in plain values at: {leaks}"


# A program that fails on its settings registers nothing and reports the problem.
def test_failing_program_gives_preview_failed_with_nothing_registered(
    toy_program_dir, toy_stack_file
):
    stack_file = toy_stack_file(**{"toy:passwordLength": 8})

    with pytest.raises(PreviewFailed) as failure:
        run_program("dev", stack_file, project_dir=toy_program_dir)

    assert failure.value.recording.resources == [], "resources registered before the error"
    assert failure.value.problems == ["toy:passwordLength: 8 is below the minimum of 12"]


# Runs are independent: fresh resources, exports and secrets each time.
def test_program_runs_again_in_the_same_process(toy_program_dir, toy_stack_file, tmp_path):
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text("toy:apiToken: token-one\n")
    with_token = toy_stack_file(**{"toy:apiToken": {"secure": "v1:encrypted"}})

    first = run_program("dev", with_token, project_dir=toy_program_dir, secrets_file=secrets_file)
    second = run_program("dev", project_dir=toy_program_dir)
    third = run_program("dev", project_dir=toy_program_dir)

    assert len(first.resources) == len(second.resources) == len(third.resources) == 10
    assert "apiToken" in first.exports and "apiToken" not in second.exports, "export carried over"
    assert first.exports["apiToken"].secret and "token-one" in set(first.secret_values())
    assert second.export("dbPassword") != third.export("dbPassword"), "passwords repeated"


# The same seed gives the same passwords and EC keys.
def test_seeded_runs_are_repeatable(toy_program_dir):
    first = run_program("dev", project_dir=toy_program_dir, seed="fixed")
    second = run_program("dev", project_dir=toy_program_dir, seed="fixed")

    assert first.export("dbPassword") == second.export("dbPassword")
    assert first.named("ca-key").output("publicKeyPem") == second.named("ca-key").output(
        "publicKeyPem"
    )


# An encrypted value without its plaintext stops the run, naming the key and the file.
def test_secure_config_without_plaintext_names_key_and_file(toy_program_dir, toy_stack_file):
    stack_file = toy_stack_file(**{"toy:apiToken": {"secure": "v1:encrypted"}})

    with pytest.raises(StackConfigError) as error:
        run_program("dev", stack_file, project_dir=toy_program_dir)

    assert "toy:apiToken" in str(error.value) and str(stack_file) in str(error.value)
    assert "--secrets" in str(error.value), "the message does not say how to fix it"


# PULUMI_CONFIG* variables of the calling shell never reach the program.
def test_pulumi_config_environment_is_ignored(toy_program_dir, toy_stack_file, monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"toy:readOnly": "false"}))
    monkeypatch.setenv("PULUMI_CONFIG_TOY_READONLY", "false")
    stack_file = toy_stack_file(**{"toy:readOnly": None})

    recording = run_program("dev", stack_file, project_dir=toy_program_dir)

    assert recording.named("web", CONTAINER).input("readOnly") is False
    assert "PULUMI_CONFIG" in os.environ, "the caller's environment was not restored"


# Docker outputs: image ids from the reference, addresses inside the joined subnet.
def test_docker_outputs_are_computed_like_the_provider(toy_recording):
    image = toy_recording.named("web-image", REMOTE_IMAGE)
    network = toy_recording.named("clinical", NETWORK)
    container = toy_recording.named("web", CONTAINER)

    expected = "sha256:" + hashlib.sha256(b"nginx:1.27-alpine").hexdigest()
    (attachment,) = container.output("networkDatas")

    assert image.output("imageId") == expected and container.input("image") == expected
    assert image.output("repoDigest").startswith("nginx@sha256:")
    assert network.input("internal") is True, "config object did not reach the program"
    assert ipaddress.ip_address(attachment["ipAddress"]) in ipaddress.ip_network("10.30.0.0/24")
    assert container.input("ports.0.ip") == "127.0.0.1", "ports must be echoed as given"


# Two resources with one URN fail the run like the engine would.
def test_duplicate_urns_fail_the_preview(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: twins\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    (tmp_path / "__main__.py").write_text(
        "import pulumi_random as random\n"
        'random.RandomString("twin", length=4)\n'
        'random.RandomString("twin", length=5)\n'
    )

    with pytest.raises(PreviewFailed) as failure:
        run_program("dev", project_dir=tmp_path)

    assert "duplicate resource URN" in failure.value.problems[0], failure.value.problems
    assert len(failure.value.recording.resources) == 1


# The stand-in rejects what the provider rejects, naming the resource and the input.
def test_stand_in_rejects_an_unknown_certificate_usage():
    stand_in = ProviderStandIn()
    _, key = stand_in.new_resource(
        MockResourceArgs(PRIVATE_KEY, "key", {"algorithm": "ECDSA", "ecdsaCurve": "P256"})
    )
    inputs = {
        "privateKeyPem": key["privateKeyPem"]["value"],
        "validityPeriodHours": 24,
        "allowedUses": ["server_auth", "world_domination"],
    }

    with pytest.raises(StandInError, match="allowedUses: 'world_domination'") as error:
        stand_in.new_resource(MockResourceArgs(CA_CERT, "cert", inputs))

    assert "'cert'" in str(error.value), "the message does not name the resource"


# `plan --format json` prints the redacted recording; text is a tree under the component.
def test_plan_command_prints_tree_and_redacted_json(toy_program_dir, capsys):
    arguments = ["plan", "--stack", "dev", "--project-dir", str(toy_program_dir)]

    json_exit = tools_main([*arguments, "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    text_exit = tools_main(arguments)
    tree = capsys.readouterr().out

    assert json_exit == 0 and text_exit == 0
    assert document["exports"]["dbPassword"]["value"] == REDACTED
    assert len(document["resources"]) == 10
    assert "└─ web  [toy:components:Service]" in tree, tree
    assert "   ├─ web  [docker:index/container:Container]" in tree
    assert "result=[secret]" in tree and "dbPassword  [secret]" in tree


# A failing program gives a non-zero exit and its problems, without a traceback.
def test_plan_command_reports_problems_without_traceback(toy_program_dir, toy_stack_file, capsys):
    stack_file: Path = toy_stack_file(**{"toy:passwordLength": 8})

    exit_code = tools_main(
        [
            "plan",
            "--stack",
            "dev",
            "--stack-file",
            str(stack_file),
            "--project-dir",
            str(toy_program_dir),
        ]
    )
    captured = capsys.readouterr()

    assert exit_code == 1
    assert "toy:passwordLength: 8 is below the minimum of 12" in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out


# A bug in the program (not a reported problem) is located by file and line, still briefly.
def test_plan_command_locates_a_program_bug(tmp_path, capsys):
    (tmp_path / "Pulumi.yaml").write_text("name: buggy\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    (tmp_path / "__main__.py").write_text('zones = {}\nzones["edge"]\n')

    exit_code = tools_main(["plan", "--stack", "dev", "--project-dir", str(tmp_path)])
    captured = capsys.readouterr()

    assert exit_code == 1
    assert f"at {tmp_path / '__main__.py'}:2" in captured.err, captured.err
    assert "Traceback" not in captured.err


# In first-preview mode computed outputs stay unknown and so do the inputs built from them.
def test_first_preview_mode_leaves_computed_values_unknown(toy_program_dir):
    recording = run_program("dev", project_dir=toy_program_dir, unknown_computed=True)

    container = recording.named("web", CONTAINER)
    view = recording.redacted()

    assert container.input("image") == UNKNOWN, "image id should be unknown before creation"
    assert recording.export("caCertPem") == UNKNOWN
    assert view["exports"]["caCertPem"]["value"] == "[unknown]", view["exports"]["caCertPem"]
    assert container.input("name") == "toy-web", "known inputs must stay known"


# A failing assertion prints reprs: they must not carry any value, let alone a secret.
def test_reprs_show_no_values(toy_recording):
    shown = repr(toy_recording) + repr(toy_recording.resources) + repr(toy_recording.exports)

    leaked = [s[:6] + "…" for s in toy_recording.secret_values() if s in shown]

    assert not leaked, f"secret values in reprs: {leaked}"
    assert "RecordedResource(docker:index/container:Container 'web')" in shown, shown


# A broken secrets file is reported by position only: the offending line may be a secret.
def test_broken_secrets_file_does_not_echo_its_content(toy_program_dir, toy_stack_file, tmp_path):
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text('toy:apiToken: "s3cr3t-value\n')
    stack_file = toy_stack_file(**{"toy:apiToken": {"secure": "v1:encrypted"}})

    with pytest.raises(StackConfigError) as error:
        run_program("dev", stack_file, project_dir=toy_program_dir, secrets_file=secrets_file)

    assert "s3cr3t" not in str(error.value), str(error.value)
    assert "not valid YAML at line" in str(error.value), str(error.value)

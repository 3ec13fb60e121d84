"""`python -m tools plan`: what the program would create, as a component tree or as JSON.

Secrets never appear: the JSON is the redacted recording, the tree shows `[secret]`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tools.commandline import add_stack_arguments, recording_for
from tools.recording import REDACTED, UNKNOWN_MARK, RecordedResource, Recording

NAME = "plan"
HELP = "run the program offline and show every resource and export it would create"

VALUE_WIDTH = 70


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser)
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: a tree grouped by component; json: the recording, secrets redacted",
    )


def run(args: argparse.Namespace) -> int:
    recording = recording_for(args)
    if args.format == "json":
        print(json.dumps(recording.redacted(), indent=2, default=str))
    else:
        print("\n".join(render_tree(recording)))
    return 0


def render_tree(recording: Recording) -> Iterator[str]:
    """One line per resource under its component, then the exports and operator logs."""
    custom = [r for r in recording.resources if r.custom]
    yield (
        f"stack {recording.stack} of {recording.project}: {len(custom)} resources in "
        f"{len(recording.resources) - len(custom)} components, {len(recording.exports)} exports"
    )
    yield from _branch(recording, None, "")

    if recording.exports:
        yield ""
        yield "exports:"
        width = max(len(name) for name in recording.exports)
        for name, export in sorted(recording.exports.items()):
            yield f"  {name:<{width}}  {_short(export.redacted())}"

    notable = [entry for entry in recording.logs if entry.severity != "debug"]
    if notable:
        yield ""
        yield "program messages:"
        for entry in notable:
            yield f"  {entry.severity}: {entry.message}"


def _branch(recording: Recording, parent: RecordedResource | None, indent: str) -> Iterator[str]:
    children = recording.children(parent)
    for index, child in enumerate(children):
        last = index == len(children) - 1
        connector = "└─ " if last else "├─ "
        facts = describe(child, recording)
        yield f"{indent}{connector}{child.name}  [{child.type}]" + (f"  {facts}" if facts else "")
        yield from _branch(recording, child, indent + ("   " if last else "│  "))


def describe(resource: RecordedResource, recording: Recording) -> str:
    """The few facts a reviewer wants for this type of resource, secrets left out."""
    describer = DESCRIBERS.get(resource.type)
    if describer is None:
        return _generic_facts(resource)
    return describer(resource, recording)


def _network(resource: RecordedResource, _: Recording) -> str:
    subnets = [str(c.get("subnet")) for c in resource.input("ipamConfigs", []) or []]
    facts = [f"name={resource.input('name', resource.name)}"]
    facts.append(f"subnet={','.join(subnets)}" if subnets else "subnet=(docker default)")
    if resource.input("internal"):
        facts.append("internal")
    facts.extend(f"{k}={v}" for k, v in _labels(resource).items())
    return " ".join(facts)


def _container(resource: RecordedResource, recording: Recording) -> str:
    facts = [
        f"name={resource.input('name', resource.name)}",
        f"image={_image_name(resource, recording)}",
    ]
    networks = [str(n.get("name")) for n in resource.input("networksAdvanced", []) or []]
    if networks:
        facts.append(f"networks={','.join(networks)}")
    ports = [_port(p) for p in resource.input("ports", []) or []]
    if ports:
        facts.append(f"publishes={','.join(ports)}")
    if resource.input("readOnly"):
        facts.append("read-only")
    if resource.input("start") is False:
        held = [str(v.get("containerPath")) for v in resource.input("volumes", []) or []]
        facts.append(f"never started, holds files at {','.join(held)}")
    carriers = [
        str(v["fromContainer"])
        for v in resource.input("volumes", []) or []
        if v.get("fromContainer")
    ]
    if carriers:
        facts.append(f"files from {','.join(carriers)}")
    if resource.input("restart"):
        facts.append(f"restart={resource.input('restart')}")
    if resource.secret_inputs:
        facts.append(f"secret inputs={','.join(sorted(resource.secret_inputs))}")
    return " ".join(facts)


def _volume(resource: RecordedResource, _: Recording) -> str:
    facts = [f"name={resource.input('name', resource.name)}"]
    facts.extend(f"{k}={v}" for k, v in _labels(resource).items())
    if resource.options.get("retainOnDelete"):
        facts.append("retained on delete")
    if resource.options.get("protect"):
        facts.append("protected")
    return " ".join(facts)


def _remote_image(resource: RecordedResource, _: Recording) -> str:
    return f"name={resource.input('name')}"


def _private_key(resource: RecordedResource, _: Recording) -> str:
    algorithm = str(resource.input("algorithm"))
    detail = {
        "RSA": f"{_number(resource.output('rsaBits'))} bits",
        "ECDSA": resource.output("ecdsaCurve"),
    }
    return f"{algorithm} {detail.get(algorithm, '')}".strip()


def _certificate(resource: RecordedResource, recording: Recording) -> str:
    facts = []
    certificate = _parsed_certificate(resource.output("certPem"))
    if certificate is not None:
        facts.append(f"subject={certificate.subject.rfc4514_string()}")
        sans = _sans(certificate)
        if sans:
            facts.append(f"sans={','.join(sans)}")
        facts.append(f"not-after={resource.output('validityEndTime')}")
    if resource.input("isCaCertificate"):
        facts.append("CA")
    facts.append(f"uses={','.join(resource.input('allowedUses', []) or [])}")
    if resource.input("earlyRenewalHours"):
        facts.append(f"early-renewal={_number(resource.input('earlyRenewalHours'))}h")
    return " ".join(facts)


def _cert_request(resource: RecordedResource, _: Recording) -> str:
    subject = resource.input("subject") or {}
    names = list(resource.input("dnsNames", []) or []) + list(
        resource.input("ipAddresses", []) or []
    )
    return f"cn={subject.get('commonName', '')} sans={','.join(names)}"


def _password(resource: RecordedResource, _: Recording) -> str:
    minimums = ",".join(
        f"{kind}>={_number(resource.input('min' + kind.capitalize(), 0))}"
        for kind in ("upper", "lower", "numeric", "special")
    )
    special = resource.input("overrideSpecial")
    facts = [f"length={_number(resource.input('length'))}", minimums]
    if special is not None:
        facts.append(f"special={special!r}")
    if resource.input("keepers"):
        facts.append(f"keepers={','.join(sorted(resource.input('keepers')))}")
    if resource.output("result") is None:
        facts.append(f"result={UNKNOWN_MARK}")
    else:
        facts.append(f"result={REDACTED if resource.output_is_secret('result') else 'PLAIN'}")
    return " ".join(facts)


def _generic_facts(resource: RecordedResource) -> str:
    if not resource.custom:
        return ""
    shown = [
        f"{k}={_short(v, 24)}"
        for k, v in resource.inputs.items()
        if not resource.input_holds_secret(k)
    ]
    return " ".join(shown[:4])


DESCRIBERS: Mapping[str, Callable[[RecordedResource, Recording], str]] = {
    "docker:index/network:Network": _network,
    "docker:index/container:Container": _container,
    "docker:index/volume:Volume": _volume,
    "docker:index/remoteImage:RemoteImage": _remote_image,
    "tls:index/privateKey:PrivateKey": _private_key,
    "tls:index/selfSignedCert:SelfSignedCert": _certificate,
    "tls:index/locallySignedCert:LocallySignedCert": _certificate,
    "tls:index/certRequest:CertRequest": _cert_request,
    "random:index/randomPassword:RandomPassword": _password,
}


def _labels(resource: RecordedResource) -> dict[str, str]:
    return {str(x.get("label")): str(x.get("value")) for x in resource.input("labels", []) or []}


def _image_name(container: RecordedResource, recording: Recording) -> str:
    image = container.input("image")
    for remote in recording.of_type("docker:index/remoteImage:RemoteImage"):
        if remote.output("imageId") == image:
            return str(remote.input("name"))
    return str(image)


def _port(port: Mapping[str, Any]) -> str:
    host = port.get("ip", "0.0.0.0")
    return (
        f"{host}:{_number(port.get('external', '?'))}->{_number(port.get('internal'))}/"
        f"{port.get('protocol', 'tcp')}"
    )


def _parsed_certificate(pem: Any) -> Any:
    from cryptography import x509

    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        return None
    return x509.load_pem_x509_certificate(pem.encode())


def _sans(certificate: Any) -> list[str]:
    from cryptography import x509

    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(getattr(name, "value", name)) for name in names]


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _short(value: Any, width: int = VALUE_WIDTH) -> str:
    if isinstance(value, str) and "-----BEGIN " in value:
        kind = value.split("-----BEGIN ", 1)[1].split("-----", 1)[0]
        return f"<{kind} PEM, {value.count('-----BEGIN ')} block(s)>"
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"

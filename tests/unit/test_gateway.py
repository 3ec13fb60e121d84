"""The nginx gateway: rendered nginx.conf (checked by a real `nginx -t`), ports, zones, secrets."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.gateway import (
    CONF_PATH,
    HTTP_CONTAINER_PORT,
    NginxLayout,
    assign_listeners,
    image_version,
    render_nginx_conf,
)
from components.platform import WebSite
from tools.recording import Recording

REPO = Path(__file__).resolve().parents[2]
CONTAINER = "docker:index/container:Container"
LEAF_CERT = "tls:index/locallySignedCert:LocallySignedCert"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
STACKS = ["dev", "prod"]
EDGE, MANAGEMENT = "10.40.0.10", "10.40.9.10"
ZONE_SUBNETS = {
    "edge": "172.31.0.0/24",
    "clinical": "172.31.1.0/24",
    "data": "172.31.2.0/24",
    "security": "172.31.3.0/24",
}

PACS = WebSite(
    service="pacs",
    host_name="pacs.hospital.example.org",
    upstream_host="orthanc",
    upstream_port=8042,
    zone="clinical",
    listen_address=EDGE,
    listen_port=443,
    streaming=True,
)
EMR = dataclasses.replace(
    PACS,
    service="emr",
    host_name="emr.hospital.example.org",
    upstream_host="openemr",
    upstream_port=80,
    streaming=False,
)
EDR = dataclasses.replace(
    PACS,
    service="edr",
    host_name="edr.hospital.example.org",
    upstream_host="velociraptor",
    upstream_port=8889,
    zone="security",
    listen_address=MANAGEMENT,
    upstream_tls=True,
    streaming=False,
)


def gateway_container(recording: Recording):
    return recording.named("gateway", CONTAINER)


def uploaded_conf(recording: Recording) -> str:
    files = recording.uploaded_files(gateway_container(recording))
    return next(file.content for file in files if file.file == CONF_PATH)


def server_block(conf: str, host_name: str) -> str:
    """The text of the TLS server block that serves `host_name`."""
    for block in conf.split("    server {")[1:]:
        if f"server_name {host_name};" in block and "ssl_certificate" in block:
            return block
    raise AssertionError(f"no TLS server block for {host_name}")


def installed_nginx_version() -> tuple[int, int, int]:
    nginx = shutil.which("nginx")
    assert nginx, "nginx is not installed: apt-get install -y nginx-light (Debian) runs nginx -t"
    banner = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=True).stderr
    return tuple(int(part) for part in re.search(r"(\d+)\.(\d+)\.(\d+)", banner).groups())


# The rendered configuration for every kind of site passes a real `nginx -t`, with the real
# certificates and keys the preview issued (upstream names point at loopback: Docker's DNS
# resolves them in the container, and nginx -t resolves static upstreams while parsing).
def test_rendered_conf_passes_nginx_t(prod_recording: Recording, tmp_path: Path) -> None:
    version = installed_nginx_version()
    certificate = prod_recording.named("pki-gateway-pacs", LEAF_CERT).output("certPem")
    key = prod_recording.named("pki-gateway-pacs", PRIVATE_KEY).output("privateKeyPem")
    sites = [dataclasses.replace(site, upstream_host="127.0.0.1") for site in (EMR, PACS, EDR)]
    for site in sites:
        (tmp_path / f"{site.service}.crt").write_text(certificate)
        (tmp_path / f"{site.service}.key").write_text(key)
    layout = NginxLayout(
        tls_dir=str(tmp_path), pid_file=str(tmp_path / "nginx.pid"), temp_dir=str(tmp_path)
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            sites,
            hsts=True,
            edge_address=EDGE,
            https_port=443,
            nginx_version=version,
            layout=layout,
            zone_subnets=ZONE_SUBNETS,
        )
    )

    result = subprocess.run(
        ["nginx", "-t", "-q", "-p", str(tmp_path), "-e", "stderr", "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, f"nginx -t rejected the rendered configuration:\n{result.stderr}"


# The EDR GUI is for the management audience alone: containers of the clinical zone, which reach
# every port of the gateway over their bridge, are refused; staff sites stay open to the zones.
def test_edr_gui_refuses_the_clinical_zone_inside_docker() -> None:
    conf = render_nginx_conf(
        [EMR, PACS, EDR], hsts=True, edge_address=EDGE, https_port=443, zone_subnets=ZONE_SUBNETS
    )

    edr, pacs = server_block(conf, EDR.host_name), server_block(conf, PACS.host_name)

    assert "deny 172.31.1.0/24;" in edr, edr
    assert "deny 172.31.3.0/24;" not in edr and "deny 172.31.0.0/24;" not in edr, edr
    assert "deny " not in pacs and "deny " not in server_block(conf, EMR.host_name), pacs


# In dev every site shares the loopback address: the GUI's own port still marks its audience.
def test_dev_edr_gui_on_the_edge_address_still_refuses_the_clinical_zone(
    dev_recording: Recording,
) -> None:
    conf = uploaded_conf(dev_recording)
    subnet = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]["hospital:network"]

    edr = server_block(conf, "edr.hospital.localhost")

    assert f"deny {subnet['clinical']['subnet']};" in edr, edr
    assert "deny " not in server_block(conf, "pacs.hospital.localhost")


# TLS 1.2 and 1.3 only, with forward-secret AEAD suites for 1.2.
@pytest.mark.parametrize("stack", STACKS)
def test_tls_is_limited_to_1_2_and_1_3(stack: str, request) -> None:
    conf = uploaded_conf(request.getfixturevalue(f"{stack}_recording"))

    protocols = re.findall(r"^\s*ssl_protocols (.+);$", conf, re.MULTILINE)
    ciphers = re.search(r"^\s*ssl_ciphers (.+);$", conf, re.MULTILINE).group(1).split(":")

    assert protocols == ["TLSv1.2 TLSv1.3"], protocols
    assert all(c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c) for c in ciphers), ciphers
    assert "ssl_session_cache shared:" in conf and "ssl_session_tickets off;" in conf


# HSTS is sent in prod only (a dev lab on loopback would pin browsers to a throw-away CA).
def test_hsts_only_in_prod(prod_recording: Recording, dev_recording: Recording) -> None:
    prod, dev = uploaded_conf(prod_recording), uploaded_conf(dev_recording)

    assert "Strict-Transport-Security" in server_block(prod, "pacs.hospital.example.org")
    assert "Strict-Transport-Security" not in dev


# Plain HTTP redirects the served names to HTTPS (on the configured HTTPS port) and drops the rest.
@pytest.mark.parametrize(
    ("stack", "target"),
    [("prod", "https://$host$request_uri"), ("dev", "https://$host:8443$request_uri")],
)
def test_http_redirects_to_https(stack: str, target: str, request) -> None:
    conf = uploaded_conf(request.getfixturevalue(f"{stack}_recording"))

    assert f"return 301 {target};" in conf, conf
    assert f"listen {HTTP_CONTAINER_PORT} default_server;\n        return 444;" in conf


# Orthanc's uploads and downloads stream: no body size limit and no request buffering.
@pytest.mark.parametrize("stack", STACKS)
def test_pacs_site_streams_uploads(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    domain = recording.export("domain")

    block = server_block(uploaded_conf(recording), f"pacs.{domain}")

    assert "client_max_body_size 0;" in block, block
    assert "proxy_request_buffering off;" in block, block
    assert "proxy_max_temp_file_size 0;" in uploaded_conf(recording)


# A site that does not stream keeps a body limit.
def test_non_streaming_site_keeps_a_body_limit() -> None:
    conf = render_nginx_conf([EMR, PACS], hsts=False, edge_address=EDGE, https_port=443)

    block = server_block(conf, EMR.host_name)

    assert "client_max_body_size 0;" not in block and "client_max_body_size" in block, block
    assert "proxy_request_buffering off;" not in block, block


# Upstream connections are reused: HTTP/1.1, no Connection header, a keepalive pool.
def test_upstreams_keep_connections_alive(prod_recording: Recording) -> None:
    conf = uploaded_conf(prod_recording)

    upstream = re.search(r"upstream upstream_pacs \{(.*?)\}", conf, re.DOTALL).group(1)

    assert re.search(r"keepalive \d+;", upstream), upstream
    assert "proxy_http_version 1.1;" in conf and 'proxy_set_header Connection "";' in conf


# Upstreams get the Host the browser sent, port included (the EDR GUI on its own port would
# otherwise fail Velociraptor's Origin check), and RFC 7239's quoted host in Forwarded.
def test_upstreams_get_the_browsers_host_with_its_port(prod_recording: Recording) -> None:
    conf = uploaded_conf(prod_recording)

    assert "proxy_set_header Host $http_host;" in conf, "Host must keep the port"
    assert """proxy_set_header Forwarded 'proto=https;host="$http_host"';""" in conf
    assert "$host;" not in conf, "a header drops the port the browser used"


# The pinned nginx 1.28 gets `http2 on` and re-resolving upstreams; an older nginx the forms
# it understands.
def test_directives_follow_the_nginx_version() -> None:
    modern = render_nginx_conf(
        [PACS], hsts=True, edge_address=EDGE, https_port=443, nginx_version=(1, 28, 0)
    )
    legacy = render_nginx_conf(
        [PACS], hsts=True, edge_address=EDGE, https_port=443, nginx_version=(1, 22, 1)
    )

    assert "http2 on;" in modern and "server orthanc:8042 resolve;" in modern
    assert "ssl http2" in legacy and "resolve;" not in legacy and "http2 on;" not in legacy
    assert image_version("nginx:1.28.0") == (1, 28, 0)


# Sites for different audiences get different container ports, so SNI cannot cross them.
def test_each_audience_has_its_own_listener() -> None:
    same_port_edr = dataclasses.replace(EDR, listen_port=443)

    listeners = assign_listeners([EMR, PACS, same_port_edr])
    conf = render_nginx_conf(
        [EMR, PACS, same_port_edr], hsts=True, edge_address=EDGE, https_port=443
    )
    ports = {(item.address, item.host_port): item.container_port for item in listeners}

    assert len(listeners) == 2 and ports[(EDGE, 443)] != ports[(MANAGEMENT, 443)], listeners
    assert f"listen {ports[(MANAGEMENT, 443)]} ssl" in server_block(conf, EDR.host_name)
    assert f"listen {ports[(EDGE, 443)]} ssl" in server_block(conf, PACS.host_name)


# An HTTPS upstream is reached over TLS 1.2+ with the upstream's own name.
def test_https_upstream_is_encrypted() -> None:
    conf = render_nginx_conf([EDR], hsts=True, edge_address=EDGE, https_port=443)

    block = server_block(conf, EDR.host_name)

    assert "proxy_pass https://upstream_edr;" in block, block
    assert (
        "proxy_ssl_protocols TLSv1.2 TLSv1.3;" in block and "proxy_ssl_name velociraptor;" in block
    )


# The gateway publishes only on its sites' addresses (plus HTTP on the edge), never 0.0.0.0.
@pytest.mark.parametrize("stack", STACKS)
def test_gateway_publishes_only_on_site_addresses(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    configured = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    audiences = configured["hospital:addresses"]
    allowed = {audiences["edge"], audiences["management"]}

    ports = gateway_container(recording).input("ports")

    assert ports and all(port["ip"] in allowed for port in ports), ports
    assert all(port["ip"] != "0.0.0.0" for port in ports), ports
    assert all(port["internal"] > 1024 for port in ports), "a port below 1024 needs a capability"


# Keys are uploaded as secrets; certificates and the configuration are not.
@pytest.mark.parametrize("stack", STACKS)
def test_private_keys_are_secret_uploads(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")

    files = recording.uploaded_files(gateway_container(recording))

    assert files, f"{stack}: the gateway gets no files"
    for file in files:
        assert file.secret == file.file.endswith(".key"), (file.file, file.secret)


# The gateway runs as the image's unprivileged user, joins the edge and its sites' zones, and
# checks its health with a real HTTP request.
def test_gateway_container_baseline(prod_recording: Recording) -> None:
    container = gateway_container(prod_recording)

    networks = [n["name"] for n in container.input("networksAdvanced")]

    assert container.input("user") == "101:101"
    assert container.input("capabilities") == {"drops": ["ALL"]}, container.input("capabilities")
    assert networks[0] == "hospital-prod-edge" and "hospital-prod-clinical" in networks, networks
    assert container.input("healthcheck.tests")[:2] == ["CMD", "curl"]


# The gateway waits for the PACS it proxies.
def test_gateway_starts_after_its_upstreams(prod_recording: Recording) -> None:
    gateway = gateway_container(prod_recording)
    pacs = prod_recording.named("pacs", CONTAINER)

    assert pacs.urn in gateway.dependencies, gateway.dependencies


# Each site is served with its own certificate, issued for its host name.
def test_each_site_has_its_own_certificate(prod_recording: Recording) -> None:
    certificate = prod_recording.named("pki-gateway-pacs", LEAF_CERT)

    block = server_block(uploaded_conf(prod_recording), "pacs.hospital.example.org")

    assert "ssl_certificate /etc/nginx/tls/pacs.crt;" in block, block
    assert certificate.input("dnsNames", None) is None  # names live on the request
    request = prod_recording.named("pki-gateway-pacs", "tls:index/certRequest:CertRequest")
    assert request.input("dnsNames") == ["pacs.hospital.example.org"]


# Each site's server block listens only on the container port published on its audience's
# address: the EDR GUI on the management address, the clinical sites on the edge address.
@pytest.mark.parametrize("stack", STACKS)
def test_sites_are_served_only_to_their_audience(stack: str, request) -> None:
    recording = request.getfixturevalue(f"{stack}_recording")
    configured = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    audiences, domain = configured["hospital:addresses"], configured["hospital:domain"]
    published = {p["internal"]: p["ip"] for p in gateway_container(recording).input("ports")}
    conf = uploaded_conf(recording)
    expected = {"pacs": audiences["edge"], "emr": audiences["edge"], "edr": audiences["management"]}

    served = {
        service: [int(port) for port in re.findall(r"listen (\d+) ssl", block)]
        for service in expected
        if f"server_name {service}.{domain};" in conf
        for block in [server_block(conf, f"{service}.{domain}")]
    }

    assert "pacs" in served, served
    for service, ports in served.items():
        assert {published[port] for port in ports} == {expected[service]}, (service, ports)


# HTTP redirects only names served on the edge address; a management-only site never appears.
def test_http_redirect_leaves_out_sites_of_other_addresses() -> None:
    same_port_edr = dataclasses.replace(EDR, listen_port=443)

    conf = render_nginx_conf([PACS, same_port_edr], hsts=True, edge_address=EDGE, https_port=443)

    redirect = re.search(r"server_name ([^;]+);\n\s+return 301", conf).group(1)
    assert redirect.split() == [PACS.host_name], redirect

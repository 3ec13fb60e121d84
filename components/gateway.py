"""The nginx TLS gateway: the image contract, its settings, the component, and the pure function
that renders nginx.conf for the web interfaces it publishes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.config_model import CpuShares, MemoryMb, PinnedImage, Port, StackModel

if TYPE_CHECKING:
    from components.platform import Platform, WebSite

IMAGE = "nginx:1.28.0"
ALIAS = "gateway"

# The official image's unprivileged `nginx` user (uid/gid 101). The master runs as that user
# too, so it listens on unprivileged container ports and needs no capability at all; Docker
# maps the configured host ports (443, 80) onto them.
RUN_AS = "101:101"
FIRST_HTTPS_CONTAINER_PORT = 8443
HTTP_CONTAINER_PORT = 8080
HEALTH_PORT = 8081
HEALTH_PATH = "/healthz"

CONF_PATH = "/etc/nginx/nginx.conf"
TLS_DIR = "/etc/nginx/tls"
# Docker's embedded DNS server on user-defined networks.
DOCKER_DNS = "127.0.0.11"

# TLS 1.2 and 1.3 only. For 1.2, Mozilla's "intermediate" suites minus the DHE ones: every key
# of the stack's PKI is ECDSA or RSA, so ECDHE always applies and no DH parameters are needed.
TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
)
HSTS_MAX_AGE_S = 63072000  # two years

# Throughput settings (see render_nginx_conf for where each applies and why).
UPSTREAM_KEEPALIVE = 16
UPSTREAM_KEEPALIVE_TIMEOUT = "60s"
PROXY_BUFFER_SIZE = "64k"
PROXY_BUFFERS = "8 256k"


class GatewaySettings(StackModel):
    """nginx: image, memory and the host ports it publishes on the edge address."""

    image: PinnedImage = IMAGE
    memory_mb: MemoryMb = 256
    cpu_shares: CpuShares = 1024
    https_port: Port = 443
    http_port: Port = 80


@dataclass(frozen=True)
class Listener:
    """One published HTTPS entry point: host address and port, and nginx's port in the container."""

    address: str
    host_port: int
    container_port: int


@dataclass(frozen=True)
class NginxLayout:
    """Where the rendered configuration points nginx at: files of the container by default."""

    tls_dir: str = TLS_DIR
    pid_file: str = "/tmp/nginx.pid"
    temp_dir: str = "/tmp"
    mime_types: str = "/etc/nginx/mime.types"


class Gateway(pulumi.ComponentResource):
    """nginx terminating TLS for every WebSite it is handed, each with its own certificate.

    It joins the edge zone and the zone of every site, publishes each site only on its own
    listen address, redirects HTTP to HTTPS on the edge address, and starts after `upstreams`.
    """

    def __init__(
        self,
        name: str,
        platform: Platform,
        sites: Sequence[WebSite],
        *,
        upstreams: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # Imported here: the platform imports the settings, which import this module's model.
        from components.platform import Healthcheck, Publish, Upload

        super().__init__("hospital:components:Gateway", name, None, opts)
        settings = platform.settings
        gateway = settings.gateway
        edge_address = str(settings.addresses.edge)

        self.sites = tuple(sites)
        self.listeners = assign_listeners(self.sites)
        uploads = []
        for site in self.sites:
            certificate = platform.pki.issue(f"gateway-{site.service}", [site.host_name])
            uploads += [
                Upload(f"{TLS_DIR}/{site.service}.crt", certificate.cert_pem),
                Upload(f"{TLS_DIR}/{site.service}.key", certificate.private_key_pem, secret=True),
            ]
        conf = render_nginx_conf(
            self.sites,
            hsts=settings.is_prod,
            edge_address=edge_address,
            https_port=gateway.https_port,
            nginx_version=image_version(gateway.image),
            zone_subnets={
                zone: str(getattr(settings.network, zone).subnet)
                for zone in ("edge", "clinical", "data", "security")
            },
        )
        uploads.append(Upload(CONF_PATH, conf))

        publish = [
            Publish(listener.address, listener.host_port, listener.container_port, "HTTPS")
            for listener in self.listeners
        ]
        if redirected_sites(self.sites, edge_address, gateway.https_port):
            publish.append(
                Publish(edge_address, gateway.http_port, HTTP_CONTAINER_PORT, "HTTP to HTTPS")
            )
        zones = ["edge", *sorted({site.zone for site in self.sites} - {"edge"})]

        self.container = platform.container(
            "gateway",
            image=gateway.image,
            zones=zones,
            aliases=[ALIAS],
            # A real request to the status server on the container's loopback (curl ships in
            # the image); it answers once the master has loaded the configuration.
            healthcheck=Healthcheck(
                test=["CMD", "curl", "-fsS", f"http://127.0.0.1:{HEALTH_PORT}{HEALTH_PATH}"],
                interval="15s",
                timeout="5s",
                retries=3,
                start_period="10s",
            ),
            memory_mb=gateway.memory_mb,
            cpu_shares=gateway.cpu_shares,
            parent=self,
            envs={"NGINX_ENTRYPOINT_QUIET_LOGS": "1"},
            uploads=uploads,
            publish=publish,
            capabilities=[],
            user=RUN_AS,
            # Read-only root: the configuration and keys arrive through a file carrier; nginx
            # writes its pid and temporary files to the /tmp tmpfs and logs to stdout/stderr.
            tmpfs={"/tmp": "rw,noexec,nosuid,nodev,size=64m"},
            depends_on=upstreams,
        )
        self.endpoints = {site.service: https_url(site) for site in self.sites}

        self.register_outputs({"endpoints": self.endpoints})


def assign_listeners(sites: Sequence[WebSite]) -> tuple[Listener, ...]:
    """One container port per distinct (address, port) the sites listen on, from 8443 up.

    Separate container ports keep audiences apart: a site published on the management address
    is not served on the port that the edge address reaches, whatever SNI a client sends.
    """
    pairs = sorted({(site.listen_address, site.listen_port) for site in sites})
    return tuple(
        Listener(address, port, FIRST_HTTPS_CONTAINER_PORT + index)
        for index, (address, port) in enumerate(pairs)
    )


def image_version(reference: str) -> tuple[int, int, int]:
    """The nginx version of an image tag such as `nginx:1.28.0` (0.0.0 when the tag has none)."""
    match = re.search(r":(\d+)\.(\d+)\.(\d+)", reference)
    return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)


def https_url(site: WebSite) -> str:
    port = "" if site.listen_port == 443 else f":{site.listen_port}"
    return f"https://{site.host_name}{port}/"


def render_nginx_conf(
    sites: Sequence[WebSite],
    *,
    hsts: bool,
    edge_address: str,
    https_port: int,
    nginx_version: tuple[int, int, int] = (1, 28, 0),
    layout: NginxLayout = NginxLayout(),
    zone_subnets: Mapping[str, str] | None = None,
) -> str:
    """nginx.conf serving every site over TLS; pure, so it can be checked with `nginx -t`.

    `hsts` adds Strict-Transport-Security (prod); plain HTTP on the edge address redirects the
    sites served at `edge_address:https_port` to HTTPS; `nginx_version` selects directives the
    pinned nginx has (`http2 on` since 1.25.1, re-resolving upstream names since 1.27.3);
    `layout` says where files live; `zone_subnets` (trust zone -> subnet) lets a site meant for
    another audience than the edge refuse the zones the gateway shares with other services.
    """
    listeners = {(item.address, item.host_port): item for item in assign_listeners(sites)}
    gateway_zones = {"edge", *(site.zone for site in sites)}
    http2_directive = nginx_version >= (1, 25, 1)
    upstream_resolve = nginx_version >= (1, 27, 3)
    tmp = layout.temp_dir
    lines = [
        "# Rendered by the hospital program; changes here are overwritten.",
        f"pid {layout.pid_file};",
        # One worker per core: TLS is CPU-bound and the hosts have few cores.
        "worker_processes auto;",
        "error_log stderr warn;",
        "",
        "events {",
        "    worker_connections 1024;",
        "}",
        "",
        "http {",
        f"    include {layout.mime_types};",
        "    default_type application/octet-stream;",
        "    server_tokens off;",
        # The URI without its query string: DICOMweb queries carry patient names and IDs.
        "    log_format audit '$remote_addr $remote_user [$time_iso8601] $ssl_server_name '",
        "                     '\"$request_method $uri $server_protocol\" '",
        "                     '$status $body_bytes_sent '",
        "                     'rt=$request_time urt=$upstream_response_time';",
        # Buffered: one write per 64 kB or per second rather than one per request (a viewer
        # opening a series makes thousands); a killed nginx loses at most a second of lines.
        "    access_log /dev/stdout audit buffer=64k flush=1s;",
        f"    client_body_temp_path {tmp}/client_body;",
        f"    proxy_temp_path {tmp}/proxy;",
        f"    fastcgi_temp_path {tmp}/fastcgi;",
        f"    uwsgi_temp_path {tmp}/uwsgi;",
        f"    scgi_temp_path {tmp}/scgi;",
        # Proxied bodies come from sockets, never files: sendfile (and kernel TLS with it)
        # would not apply to any response this gateway sends.
        "    sendfile off;",
        "    tcp_nodelay on;",
        "    keepalive_timeout 65s;",
        "    keepalive_requests 1000;",
        f"    resolver {DOCKER_DNS} valid=10s ipv6=off;",
        "",
        f"    ssl_protocols {' '.join(TLS_PROTOCOLS)};",
        f"    ssl_ciphers {':'.join(TLS12_CIPHERS)};",
        "    ssl_prefer_server_ciphers off;",
        # Session reuse spares browsers and viewers a full handshake per connection. Tickets
        # stay off: their keys would live as long as the process and weaken forward secrecy;
        # the shared cache resumes TLS 1.2 and 1.3 sessions without them.
        "    ssl_session_cache shared:TLS:10m;",
        "    ssl_session_timeout 1d;",
        "    ssl_session_tickets off;",
        # Full-size records: throughput for multi-megabyte DICOM objects beats first-byte time.
        "    ssl_buffer_size 16k;",
        "",
        # HTTP/1.1 with an empty Connection header keeps upstream connections open for reuse.
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        # The Host the browser sent, port included: the services build their links from it,
        # and Velociraptor's CSRF check compares it with the Origin of every GUI request, which
        # carries the port whenever the site is not on 443.
        "    proxy_set_header Host $http_host;",
        "    proxy_set_header X-Real-IP $remote_addr;",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "    proxy_set_header X-Forwarded-Proto https;",
        # RFC 7239 wants a host with a port as a quoted string.
        """    proxy_set_header Forwarded 'proto=https;host="$http_host"';""",
        "    proxy_read_timeout 300s;",
        "    proxy_send_timeout 300s;",
        # Large buffers so a DICOM instance of a few MB passes with few system calls.
        f"    proxy_buffer_size {PROXY_BUFFER_SIZE};",
        f"    proxy_buffers {PROXY_BUFFERS};",
        "    proxy_busy_buffers_size 512k;",
        # Responses larger than the buffers stream through them (never to a temporary file on
        # the small /tmp tmpfs): a study archive of gigabytes passes at the client's pace.
        "    proxy_max_temp_file_size 0;",
        "",
    ]
    for site in sites:
        lines += _upstream(site, upstream_resolve)
    lines += _status_server()
    lines += _http_redirect(redirected_sites(sites, edge_address, https_port), https_port)
    for listener in listeners.values():
        lines += _default_tls_server(listener, http2_directive)
    for site in sites:
        listener = listeners[(site.listen_address, site.listen_port)]
        refused = refused_zones(site, gateway_zones, edge_address, https_port)
        subnets = [(zone_subnets or {})[zone] for zone in refused if zone in (zone_subnets or {})]
        lines += _tls_server(site, listener, hsts, http2_directive, layout, subnets)
    lines.append("}")
    return "\n".join(lines) + "\n"


def refused_zones(
    site: WebSite, gateway_zones: set[str], edge_address: str, https_port: int
) -> list[str]:
    """The trust zones whose containers must not reach `site` through the gateway.

    Host addresses and ports keep audiences apart only outside Docker: inside, every container
    of a zone the gateway joins reaches every port nginx listens on. A site published anywhere
    but the staff entry point (edge address, HTTPS port), such as the EDR GUI, is for its own
    audience alone: it refuses the gateway's other zones, its upstream's zone and the edge
    excepted (Docker's port forwarding from the host may arrive from the edge network).
    """
    if (site.listen_address, site.listen_port) == (edge_address, https_port):
        return []
    return sorted(gateway_zones - {"edge", site.zone})


def _upstream(site: WebSite, resolve: bool) -> list[str]:
    # A named upstream block is what lets nginx keep idle connections to the service.
    lines = [f"    upstream {_upstream_name(site)} {{"]
    if resolve:
        # The shared zone lets nginx re-resolve the service's name when its container is
        # replaced, instead of sending traffic to the old address until a restart.
        lines += [
            f"        zone {_upstream_name(site)} 64k;",
            f"        server {site.upstream_host}:{site.upstream_port} resolve;",
        ]
    else:
        lines.append(f"        server {site.upstream_host}:{site.upstream_port};")
    lines += [
        f"        keepalive {UPSTREAM_KEEPALIVE};",
        f"        keepalive_timeout {UPSTREAM_KEEPALIVE_TIMEOUT};",
        "    }",
        "",
    ]
    return lines


def _status_server() -> list[str]:
    return [
        "    server {",
        f"        listen 127.0.0.1:{HEALTH_PORT};",
        "        access_log off;",
        f"        location = {HEALTH_PATH} {{",
        "            default_type text/plain;",
        '            return 200 "ok\\n";',
        "        }",
        "        location / {",
        "            return 404;",
        "        }",
        "    }",
        "",
    ]


def redirected_sites(sites: Sequence[WebSite], edge_address: str, https_port: int) -> list[WebSite]:
    """The sites that plain HTTP on the edge address redirects to HTTPS."""
    return [
        site
        for site in sites
        if site.listen_address == edge_address and site.listen_port == https_port
    ]


def _http_redirect(sites: Sequence[WebSite], https_port: int) -> list[str]:
    # Only these names redirect; any other Host is dropped without an answer.
    names = sorted(site.host_name for site in sites)
    if not names:
        return []
    port = "" if https_port == 443 else f":{https_port}"
    return [
        "    server {",
        f"        listen {HTTP_CONTAINER_PORT} default_server;",
        "        return 444;",
        "    }",
        "    server {",
        f"        listen {HTTP_CONTAINER_PORT};",
        f"        server_name {' '.join(names)};",
        f"        return 301 https://$host{port}$request_uri;",
        "    }",
        "",
    ]


def _listen(listener: Listener, http2: bool, default: bool = False) -> list[str]:
    flags = " default_server" if default else ""
    if http2:
        return [f"        listen {listener.container_port} ssl{flags};", "        http2 on;"]
    return [f"        listen {listener.container_port} ssl http2{flags};"]


def _default_tls_server(listener: Listener, http2: bool) -> list[str]:
    # An unknown name gets no certificate at all: the handshake is refused.
    return [
        "    server {",
        *_listen(listener, http2, default=True),
        "        ssl_reject_handshake on;",
        "    }",
        "",
    ]


def _tls_server(
    site: WebSite,
    listener: Listener,
    hsts: bool,
    http2: bool,
    layout: NginxLayout,
    refused_subnets: Sequence[str] = (),
) -> list[str]:
    lines = [
        "    server {",
        *_listen(listener, http2),
        f"        server_name {site.host_name};",
        f"        ssl_certificate {layout.tls_dir}/{site.service}.crt;",
        f"        ssl_certificate_key {layout.tls_dir}/{site.service}.key;",
        *(f"        deny {subnet};" for subnet in refused_subnets),
    ]
    if hsts:
        lines.append(
            f'        add_header Strict-Transport-Security "max-age={HSTS_MAX_AGE_S}; '
            'includeSubDomains" always;'
        )
    lines += [
        '        add_header X-Content-Type-Options "nosniff" always;',
        '        add_header X-Frame-Options "SAMEORIGIN" always;',
        '        add_header Referrer-Policy "same-origin" always;',
    ]
    if site.streaming:
        # DICOM uploads (STOW-RS, the Orthanc Explorer) have no size limit and stream to the
        # upstream as they arrive instead of being spooled to a temporary file first.
        lines += ["        client_max_body_size 0;", "        proxy_request_buffering off;"]
    else:
        lines.append("        client_max_body_size 32m;")
    # Limitation: the EMR and the PACS are proxied over plain HTTP on the clinical bridge. That
    # hop never leaves the host's kernel and only the gateway and the two services join the
    # zone, but a process able to sniff that bridge on the host would see PHI and Orthanc's
    # basic-auth headers; TLS to them needs certificates inside their images' own web servers.
    scheme = "https" if site.upstream_tls else "http"
    lines += ["        location / {", f"            proxy_pass {scheme}://{_upstream_name(site)};"]
    if site.upstream_tls:
        # Limitation: the upstream's certificate is not verified. A service that serves HTTPS
        # itself (the EDR GUI) generates its certificate inside its container at first start,
        # so no CA is known when this file is rendered; the hop is encrypted and stays on the
        # site's trust zone, which only the gateway and that service join.
        lines += [
            "            proxy_ssl_server_name on;",
            f"            proxy_ssl_name {site.upstream_host};",
            "            proxy_ssl_verify off;",
            "            proxy_ssl_protocols TLSv1.2 TLSv1.3;",
            "            proxy_ssl_session_reuse on;",
        ]
    lines += ["        }", "    }", ""]
    return lines


def _upstream_name(site: WebSite) -> str:
    return f"upstream_{re.sub(r'[^A-Za-z0-9_]', '_', site.service)}"

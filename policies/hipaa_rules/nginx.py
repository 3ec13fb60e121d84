"""Just enough nginx configuration reading for the gateway rules: server blocks and listeners."""

import re

SERVER_START = re.compile(r"(^|[;{}\s])server\s*\{")
LISTEN = re.compile(r"^\s*listen\s+([^;]+);", re.MULTILINE)
REDIRECT = re.compile(r"^\s*return\s+(30[1278]\s+https://\S+|444)\s*;", re.MULTILINE)
SERVES_CONTENT = re.compile(
    r"^\s*(proxy_pass|fastcgi_pass|uwsgi_pass|grpc_pass|root|alias)\s", re.MULTILINE
)


def server_blocks(config: str) -> list[str]:
    """The text inside every `server { ... }` block, nested blocks included."""
    blocks = []
    for match in SERVER_START.finditer(config):
        depth, start = 1, match.end()
        for index in range(start, len(config)):
            depth += {"{": 1, "}": -1}.get(config[index], 0)
            if depth == 0:
                blocks.append(config[start:index])
                break
    return blocks


def outside_servers(config: str) -> str:
    """The configuration with every server block removed (http-level directives remain)."""
    remaining = config
    for block in server_blocks(config):
        remaining = remaining.replace(block, "")
    return remaining


def listen_ports(block: str) -> set[int]:
    """Ports a server block listens on (`listen 8080`, `listen 127.0.0.1:8081 ssl`)."""
    ports = set()
    for directive in LISTEN.findall(block):
        address = directive.split()[0]
        port = address.rsplit(":", 1)[-1]
        if port.isdigit():
            ports.add(int(port))
    return ports


def loopback_only(block: str) -> bool:
    """True when every listener of the block binds a loopback address."""
    addresses = [directive.split()[0] for directive in LISTEN.findall(block)]
    return bool(addresses) and all(
        address.startswith(("127.", "[::1]", "localhost")) for address in addresses
    )


def redirects_only(config: str, port: int) -> bool:
    """True when every server on `port` only redirects to HTTPS or drops the connection."""
    servers = [block for block in server_blocks(config) if port in listen_ports(block)]
    return bool(servers) and all(
        REDIRECT.search(block) and not SERVES_CONTENT.search(block) for block in servers
    )

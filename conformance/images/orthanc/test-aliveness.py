#!/usr/bin/env python3
"""Health probe for the Orthanc stand-in: GET /changes?last (touches the index database).

Port, scheme and credentials come from the generated /tmp/orthanc.json unless given as
--http_port, --http_scheme, --user, --pwd; --certfile/--keyfile/--keypwd add a client cert.
"""

import argparse
import base64
import json
import ssl
import sys
import urllib.request

parser = argparse.ArgumentParser()
for option, kind in (
    ("--http_port", int),
    ("--http_scheme", str),
    ("--user", str),
    ("--pwd", str),
    ("--certfile", str),
    ("--keyfile", str),
    ("--keypwd", str),
):
    parser.add_argument(option, type=kind)
arguments = parser.parse_args()

port, scheme, user, password = 8042, "http", None, None
try:
    with open("/tmp/orthanc.json", "rb") as handle:
        configuration = json.load(handle)
    port = configuration.get("HttpPort", port)
    if configuration.get("SslEnabled"):
        scheme = "https"
    users = configuration.get("RegisteredUsers") or {}
    if configuration.get("AuthenticationEnabled") and users:
        user = arguments.user or next(iter(users))
        password = users.get(user, "")
except (OSError, ValueError):
    pass

port = arguments.http_port or port
scheme = "https" if arguments.certfile else (arguments.http_scheme or scheme)
user = arguments.user or user
password = arguments.pwd or password

context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
if arguments.certfile:
    context.load_cert_chain(arguments.certfile, arguments.keyfile, arguments.keypwd)

request = urllib.request.Request(f"{scheme}://localhost:{port}/changes?last")
if user and password:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
try:
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as error:  # any failure means not alive; say which without credentials
    print(f"test-aliveness: {type(error).__name__}: {error}", file=sys.stderr)
    sys.exit(1)

"""Merge Orthanc's configuration sources into one file, as the orthancteam/orthanc image does.

Later sources win: /etc/orthanc/*.json, /run/secrets/*.json, ORTHANC_JSON, ORTHANC__* variables,
secrets named like such a variable, then image defaults for keys still unset.
"""

import glob
import json
import os
import sys
from pathlib import Path

DEFAULTS = {
    "StorageDirectory": "/var/lib/orthanc/db",
    "RemoteAccessAllowed": True,
    "AuthenticationEnabled": True,
    "HttpsCACertificates": "/etc/ssl/certs/ca-certificates.crt",
    "Plugins": ["/usr/share/orthanc/plugins/"],
}
# Plugin name -> (configuration section, enabling variable, libraries, section defaults).
PLUGINS = {
    "DicomWeb": (
        "DicomWeb",
        "DICOM_WEB_PLUGIN_ENABLED",
        ["libOrthancDicomWeb.so"],
        {"Enable": True},
    ),
}
PLUGINS_ENABLED_DIR = Path("/usr/share/orthanc/plugins")
PLUGINS_AVAILABLE_DIR = Path("/usr/share/orthanc/plugins-available")


def camel_case(token: str) -> str:
    """DICOM_AET -> DicomAet: each underscore-separated word capitalised."""
    return "".join(word.capitalize() for word in token.split("_"))


def merge(target: dict, source: dict, overwrite: bool = True) -> None:
    """Merge nested sections key by key; scalar keys are replaced only when overwrite is set."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value, overwrite)
        elif key not in target or overwrite:
            target[key] = value


def variable_section(name: str, raw: str) -> dict:
    """ORTHANC__DICOM_WEB__ENABLE=true -> {"DicomWeb": {"Enable": true}}."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    for token in reversed(name[len("ORTHANC__") :].split("__")):
        value = {camel_case(token): value}
    return value


def load_json(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except ValueError as error:
        sys.exit(f"configure.py: {path} is not valid JSON: {error}")


def collect() -> dict:
    configuration: dict = {}
    for path in sorted(glob.glob("/etc/orthanc/*.json")) + sorted(glob.glob("/run/secrets/*.json")):
        merge(configuration, load_json(path))

    if "ORTHANC_JSON" in os.environ:
        try:
            merge(configuration, json.loads(os.environ["ORTHANC_JSON"]))
        except ValueError as error:
            sys.exit(f"configure.py: ORTHANC_JSON is not valid JSON: {error}")
    for name, raw in sorted(os.environ.items()):
        if name.startswith("ORTHANC__"):
            merge(configuration, variable_section(name, raw))
    for path in sorted(glob.glob("/run/secrets/ORTHANC__*")):
        merge(configuration, variable_section(Path(path).name, Path(path).read_text().rstrip("\n")))

    merge(configuration, DEFAULTS, overwrite=False)
    return configuration


def enable_plugins(configuration: dict) -> None:
    """Move the libraries of every enabled plugin where Orthanc loads them from."""
    for section, variable, libraries, defaults in PLUGINS.values():
        wanted = section in configuration or os.environ.get(variable, "false") != "false"
        if not wanted:
            continue
        merge(configuration, {section: defaults}, overwrite=False)
        for library in libraries:
            if not (PLUGINS_ENABLED_DIR / library).exists():
                os.rename(PLUGINS_AVAILABLE_DIR / library, PLUGINS_ENABLED_DIR / library)


def main() -> None:
    target = Path(sys.argv[1])
    configuration = collect()
    enable_plugins(configuration)
    # The merged file holds credentials: readable by its owner only.
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(configuration, handle, indent=2)
    print(f"configure.py: wrote {target} ({len(configuration)} top-level keys)", file=sys.stderr)


if __name__ == "__main__":
    main()

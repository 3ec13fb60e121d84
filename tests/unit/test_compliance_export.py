"""The `compliance` export: the pack config that judges each stack, and when every dated control
falls due under that config's age limits."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from components.compliance import (
    PackConfigFileError,
    compliance_summary,
    pack_config_for,
)
from components.settings import Settings, validate_settings
from tools.recording import Recording

REPO = Path(__file__).resolve().parents[2]
PACK_CONFIGS = REPO / "policies" / "config"


def committed_settings(stack: str) -> Settings:
    document = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    return validate_settings({key.split(":", 1)[1]: v for key, v in document["config"].items()})


def days_after(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


# Prod names its mandatory pack config and dates each attestation by its own age limit.
def test_prod_export_dates_attestations_by_the_prod_limits(prod_recording: Recording) -> None:
    compliance = prod_recording.export("compliance")

    entries = {entry["item"]: entry for entry in compliance["attestations"]["entries"]}
    restore = entries["restore-test"]
    assert (compliance["packConfig"], compliance["enforcement"]) == (
        "policies/config/prod.json",
        "mandatory",
    ), compliance
    assert restore["maximumAgeDays"] == 180, "prod.json gives the restore test 180 days"
    assert restore["expires"] == days_after(restore["date"], 180), restore
    assert entries["staff-training"]["maximumAgeDays"] == 365, entries["staff-training"]
    assert compliance["attestations"]["level"] == "mandatory"


# The password rotation falls due by the rotation rule's age limit after the stamp.
def test_password_rotation_is_due_by_the_rule_limit(prod_recording: Recording) -> None:
    rotation = prod_recording.export("compliance")["passwordRotation"]
    stamp = prod_recording.export("passwordPolicy")["rotation"]

    assert rotation == {
        "level": "mandatory",
        "date": stamp,
        "maximumAgeDays": 90,
        "expires": days_after(stamp, 90),
    }, rotation


# Dev is judged by its advisory config and attests nothing.
def test_dev_export_names_the_advisory_config(dev_recording: Recording) -> None:
    compliance = dev_recording.export("compliance")

    assert compliance["packConfig"] == "policies/config/dev.json", compliance
    assert compliance["enforcement"] == "advisory", compliance
    assert compliance["attestations"]["entries"] == [], compliance


# A stack with no pack config of its own takes its environment's; one with its own keeps it.
def test_pack_config_is_the_stacks_own_else_its_environments(tmp_path: Path) -> None:
    shutil.copytree(PACK_CONFIGS, tmp_path, dirs_exist_ok=True)
    (tmp_path / "clinic-b.json").write_text('{"all": "mandatory"}')

    assert pack_config_for("staging", "prod", tmp_path) == tmp_path / "prod.json"
    assert pack_config_for("lab", "dev", tmp_path) == tmp_path / "dev.json"
    assert pack_config_for("clinic-b", "prod", tmp_path) == tmp_path / "clinic-b.json"


# Limits a pack config leaves out are the rules' own defaults, and a rule given as a bare level
# keeps the defaults too.
def test_limits_missing_from_the_pack_config_are_the_rule_defaults(tmp_path: Path) -> None:
    (tmp_path / "prod.json").write_text(
        json.dumps(
            {
                "all": "mandatory",
                "stack-missing-attestations": "advisory",
                "randompassword-enforce-rotation": {"enforcementLevel": "advisory"},
            }
        )
    )
    settings = committed_settings("prod")

    compliance = compliance_summary("prod", settings, tmp_path)

    entries = {entry["item"]: entry for entry in compliance["attestations"]["entries"]}
    assert compliance["attestations"]["level"] == "advisory", compliance["attestations"]
    assert entries["restore-test"]["maximumAgeDays"] == 180, "the rule's per-item default"
    assert entries["vpn"]["maximumAgeDays"] == 365, "the rule's default age"
    assert compliance["passwordRotation"]["maximumAgeDays"] == 90
    assert compliance["passwordRotation"]["level"] == "advisory"


# A pack config that is not a JSON object stops the program with the file's name.
@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_unreadable_pack_config_names_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "prod.json").write_text(text)

    with pytest.raises(PackConfigFileError) as failure:
        compliance_summary("prod", committed_settings("prod"), tmp_path)

    assert str(tmp_path / "prod.json") in str(failure.value), failure.value

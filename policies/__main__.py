"""Starts the HIPAA policy pack. Only the Pulumi CLI runs this file; nothing may import it."""

import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack

# The CLI runs this file with runpy from inside policies/, so the rule package must be found
# as a top-level module next to it.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hipaa_rules import POLICIES

PolicyPack(
    name="hospital-hipaa",
    policies=POLICIES,
    enforcement_level=EnforcementLevel.ADVISORY,
    description="HIPAA Security Rule and CIS Docker Benchmark rules for the hospital data center.",
)

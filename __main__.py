"""The program `pulumi up` runs: load the stack settings, build the data center, export."""

import pulumi

from components.datacenter import HospitalDataCenter
from components.settings import load_settings

settings = load_settings()
datacenter = HospitalDataCenter("hospital", settings)
for name, value in datacenter.exports().items():
    pulumi.export(name, value)

"""MariaDB for OpenEMR: the image contract, its settings and (below) the component."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.config_model import MemoryMb, PinnedImage, StackModel

IMAGE = "mariadb:11.4.8"
PORT = 3306
DATA_PATH = "/var/lib/mysql"
CONF_DIR = "/etc/mysql/conf.d"
ALIAS = "mariadb"


class DatabaseSettings(StackModel):
    """MariaDB: image, schema and account names, memory and binary-log retention."""

    image: PinnedImage = IMAGE
    memory_mb: MemoryMb = 1024
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")] = "openemr"
    user: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")] = "openemr"
    binlog_retention_days: Annotated[int, Field(ge=1, le=90)] = 7

"""Encrypted scheduled backups: settings and (below) the component."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator

from components.config_model import MemoryMb, Problem, StackModel
from components.cron import parse_cron

AGE_RECIPIENT = r"^age1[02-9ac-hj-np-z]{58}$"
MINIMUM_PROD_DAILY = 7


class RetentionSettings(StackModel):
    """How many daily and weekly backups are kept."""

    daily: Annotated[int, Field(ge=1, le=366)] = 7
    weekly: Annotated[int, Field(ge=0, le=260)] = 4


class BackupSettings(StackModel):
    """Schedule, recovery point objective, encryption recipients, retention and destination."""

    enabled: bool = False
    rpo_hours: Annotated[int, Field(ge=1, le=168)] = 24
    schedule: str = Field(default="0 2 * * *", validate_default=True)
    recipients: tuple[Annotated[str, Field(pattern=AGE_RECIPIENT)], ...] = Field(
        default=(), validate_default=True
    )
    retention: RetentionSettings = RetentionSettings()
    host_path: str | None = Field(
        default=None, description="absolute host directory; a named volume when unset"
    )
    memory_mb: MemoryMb = 512

    @field_validator("schedule")
    @classmethod
    def _meets_rpo(cls, schedule: str, info: ValidationInfo) -> str:
        gap = parse_cron(schedule).longest_gap()
        rpo_hours = info.data.get("rpo_hours")
        if rpo_hours is not None and gap.total_seconds() > rpo_hours * 3600:
            raise ValueError(
                f"leaves up to {gap} between backups, longer than the recovery point "
                f"objective rpoHours={rpo_hours}"
            )
        return schedule

    @field_validator("recipients")
    @classmethod
    def _encrypts_when_enabled(cls, recipients: tuple[str, ...], info: ValidationInfo):
        if info.data.get("enabled") and not recipients:
            raise ValueError("enabled backups need at least one age recipient to encrypt to")
        return recipients

    @field_validator("host_path")
    @classmethod
    def _is_absolute(cls, path: str | None) -> str | None:
        if path is not None and not PurePosixPath(path).is_absolute():
            raise ValueError("must be an absolute host path")
        return path

    def prod_problems(self, key: str) -> Iterable[Problem]:
        """What prod asks beyond the model's own rules."""
        if not self.enabled:
            yield Problem(f"{key}.enabled", self.enabled, "prod must back up its PHI volumes")
        if self.retention.daily < MINIMUM_PROD_DAILY:
            yield Problem(
                f"{key}.retention.daily",
                self.retention.daily,
                f"prod must keep at least {MINIMUM_PROD_DAILY} daily backups",
            )

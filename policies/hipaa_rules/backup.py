"""Backups: a scheduled, encrypted job that mounts every PHI and config volume read-only.

How the backup job declares itself lives in `backup_job()` alone, so a change to the
backup container's contract is one edit here.
"""

import math
import re
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

from pulumi_policy import Severity

from .framework import (
    CONTAINER,
    VOLUME,
    is_file_carrier,
    resource_policy,
    schema,
    setting,
    stack_policy,
)
from .inputs import (
    DATA_CLASS_LABEL,
    SERVICE_LABEL,
    environment,
    every_item,
    image_references,
    label,
    sequence,
    service,
)

BACKUP_PLAN = "164.308(a)(7)(ii)(A)"
BACKUP_STORAGE = "164.310(d)(2)(iv)"
RECOVERY_PLAN = "164.308(a)(7)(ii)(B)"
ENCRYPTION = "164.312(a)(2)(iv)"

BACKED_UP_CLASSES = {"phi", "config"}
# The scheduler's cron (backup/lib/backup-common.sh), copied because the pack imports nothing
# from the program; a test holds this copy, components/cron.py and the scheduler to one answer.
CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (lowest, highest, names standing for lowest, lowest + 1, ...) of each field in order.
CRON_FIELDS = (
    (0, 59, ()),
    (0, 23, ()),
    (1, 31, ()),
    (1, 12, CRON_MONTHS),
    (0, 7, CRON_WEEKDAYS),
)
# age's Bech32 recipients: `age1` and 58 data characters, or a plugin's `age1<name>1<data>`.
AGE_RECIPIENT = re.compile(r"age1(?:[a-z0-9]+1)?[02-9ac-hj-np-z]{58,}")
SSH_RECIPIENT = re.compile(r"(ssh-ed25519|ssh-rsa) [A-Za-z0-9+/=]{16,}")
CRON_NUMBER = re.compile(r"[0-9]{1,2}")
CRON_BLANKS = re.compile(r"[ \t\n]+")
# Gaps are measured over four years from this day, so every leap-day case is in the window.
GAP_WINDOW_START = date(2025, 1, 1)
GAP_WINDOW_DAYS = 4 * 366 + 1


@dataclass(frozen=True)
class BackupJob:
    """What the backup container declares: schedule, objective, encryption and mounts."""

    schedule: str | None
    rpo_hours: float | None
    encrypted: bool
    mounts: dict[str, bool]  # volume name -> mounted read-only


def backup_job(props, image_names=None) -> BackupJob | None:
    """The backup job a container runs, None when it is not the backup service.

    `image_names` (image id -> reference) lets a stack rule recognise an unlabelled job's image.
    """
    if service(props, image_names) != "backup":
        return None
    variables = environment(props, complete=True)
    recipient_files = [
        upload
        for upload in every_item(sequence(props, "uploads"))
        if "recipient" in str(upload.get("file", "")).lower()
    ]
    try:
        rpo_hours = float(variables["BACKUP_RPO_HOURS"])
    except (KeyError, ValueError):
        rpo_hours = None
    if rpo_hours is not None and not (math.isfinite(rpo_hours) and rpo_hours > 0):
        rpo_hours = None  # nan, inf or <= 0 bound nothing
    mounts = {}
    for volume in every_item(sequence(props, "volumes")):
        if volume.get("volumeName"):
            mounts[str(volume["volumeName"])] = bool(volume.get("readOnly", False))
    return BackupJob(
        schedule=variables.get("BACKUP_SCHEDULE"),
        rpo_hours=rpo_hours,
        encrypted=any(
            is_recipient(token)
            for token in variables.get("BACKUP_AGE_RECIPIENTS", "").replace(",", " ").split()
        )
        or any(
            is_recipient(line.strip())
            for upload in recipient_files
            for line in str(upload.get("content", "")).splitlines()
        ),
        mounts=mounts,
    )


def is_recipient(text: str) -> bool:
    """An age recipient (`age1...`, plugin recipients included) or, in a recipients file, an
    SSH public key age encrypts to; anything else (`none`, a placeholder) encrypts nothing."""
    return bool(AGE_RECIPIENT.fullmatch(text) or SSH_RECIPIENT.match(text))


class RareScheduleError(ValueError):
    """A readable schedule that runs fewer than twice in the gap window."""


def cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> int:
    """One value of a field: one or two digits, or a name where the field has names."""
    if text.lower() in names:
        return names.index(text.lower()) + low
    if not CRON_NUMBER.fullmatch(text) or not low <= int(text) <= high:
        raise ValueError(text)
    return int(text)


def cron_values(field: str, low: int, high: int, names: tuple[str, ...] = ()) -> set[int]:
    """The values one cron field selects; ValueError when it cannot be read."""
    values: set[int] = set()
    for part in field.split(","):
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not CRON_NUMBER.fullmatch(step_text) or not 1 <= int(step_text) <= high:
                raise ValueError(field)
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (cron_value(bound, low, high, names) for bound in span.split("-", 1))
        else:
            first = cron_value(span, low, high, names)
            last = high if slash else first
        if first > last:
            raise ValueError(field)
        values.update(range(first, last + 1, step))
    return values


def longest_gap_hours(expression: str) -> float:
    """The longest time without a run of a cron schedule over the four-year window, counting
    the stretches before its first and after its last run. Vixie cron's day rule: when either
    day field starts with `*` both must match, otherwise either may. RareScheduleError when it
    runs fewer than twice, ValueError when it cannot be read."""
    fields = CRON_BLANKS.split(CRON_MACROS.get(expression, expression).strip(" \t\n"))
    if len(fields) != 5:
        raise ValueError(expression)
    selected = [
        cron_values(field, *bounds) for field, bounds in zip(fields, CRON_FIELDS, strict=True)
    ]
    minutes, hours, days, months, weekdays = selected
    weekdays = {day % 7 for day in weekdays}
    either_day = not fields[2].startswith("*") and not fields[4].startswith("*")
    times = sorted(hour * 60 + minute for hour in hours for minute in minutes)
    run_days = []
    for offset in range(GAP_WINDOW_DAYS):
        day = GAP_WINDOW_START + timedelta(days=offset)
        on_day, on_weekday = day.day in days, day.isoweekday() % 7 in weekdays
        matches = on_day or on_weekday if either_day else on_day and on_weekday
        if day.month in months and matches:
            run_days.append(offset)
    if len(run_days) * len(times) < 2:
        raise RareScheduleError(len(run_days) * len(times))
    gaps = [later - earlier for earlier, later in pairwise(times)]
    gaps += [
        (later - earlier) * 1440 - times[-1] + times[0] for earlier, later in pairwise(run_days)
    ]
    gaps += [run_days[0] * 1440 + times[0], (GAP_WINDOW_DAYS - run_days[-1]) * 1440 - times[-1]]
    return max(gaps) / 60


def validate_backup_encryption(args, report_violation):
    job = backup_job(args.props)
    if job is None:
        args.not_applicable("not the backup job")
    if not job.encrypted:
        report_violation(
            f"Backup job '{args.name}' has no age recipient (age1...); set "
            "BACKUP_AGE_RECIPIENTS or upload a recipients file so archives are encrypted at rest."
        )


SCHEDULE_SCHEMA = schema(
    maximumRpoHours={"type": "number", "minimum": 1, "maximum": 168, "default": 24},
)


def validate_backup_schedule(args, report_violation):
    job = backup_job(args.props)
    if job is None:
        args.not_applicable("not the backup job")
    ceiling = setting(args, SCHEDULE_SCHEMA, "maximumRpoHours")
    try:
        gap = longest_gap_hours(job.schedule) if job.schedule else None
    except RareScheduleError as rare:
        report_violation(
            f"Backup job '{args.name}' has a BACKUP_SCHEDULE that runs {rare.args[0]} time(s) in "
            "four years, so nothing bounds the time between backups; schedule it at least daily."
        )
        return
    except ValueError:
        gap = None
    if gap is None:
        report_violation(
            f"Backup job '{args.name}' has no readable BACKUP_SCHEDULE; give it a five-field "
            "cron expression."
        )
    elif job.rpo_hours is None or job.rpo_hours > ceiling:
        report_violation(
            f"Backup job '{args.name}' declares no recovery point objective within {ceiling:g} "
            "hours; set BACKUP_RPO_HOURS."
        )
    elif gap > job.rpo_hours:
        report_violation(
            f"Backup job '{args.name}' can leave {gap:g} hours between runs, more than its "
            f"recovery point objective of {job.rpo_hours:g} hours; run it more often."
        )


COVERAGE_SCHEMA = schema(
    required={
        "type": "boolean",
        "default": True,
        "description": "Whether the stack must run a backup job at all.",
    }
)


def validate_backup_coverage(args, report_violation):
    images = image_references(args.resources)
    jobs = [
        (resource, backup_job(resource.props, images))
        for resource in args.resources
        if resource.resource_type == CONTAINER and not is_file_carrier(resource.props)
    ]
    jobs = [(resource, job) for resource, job in jobs if job is not None]
    # The backup job's own volumes (its archive destination) are where copies go, not sources.
    volumes = [
        resource
        for resource in args.resources
        if resource.resource_type == VOLUME
        and label(resource.props, DATA_CLASS_LABEL) in BACKED_UP_CLASSES
        and label(resource.props, SERVICE_LABEL) != "backup"
    ]
    if not jobs:
        if not volumes or not setting(args, COVERAGE_SCHEMA, "required"):
            args.not_applicable("no backup job, and none is required")
        report_violation(
            f"No backup job protects the {len(volumes)} PHI/config volume(s); enable "
            "`hospital:backup`."
        )
        return
    mounted: dict[str, bool] = {}
    for _, job in jobs:
        for name, read_only in job.mounts.items():
            mounted[name] = mounted.get(name, True) and read_only
    for volume in volumes:
        name = str(volume.props.get("name", volume.name))
        if name not in mounted:
            report_violation(
                f"Volume '{name}' ({label(volume.props, DATA_CLASS_LABEL)}) is not mounted in "
                "any backup job; add it to the backup container.",
                volume.urn,
            )
        elif not mounted[name]:
            report_violation(
                f"Volume '{name}' is mounted writable in the backup job; mount it read-only.",
                volume.urn,
            )


POLICIES = [
    resource_policy(
        name="container-enable-backup-encryption",
        description="The backup job encrypts every archive to a configured recipient.",
        validate=validate_backup_encryption,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[ENCRYPTION, BACKUP_STORAGE],
        remediation="Set `hospital:backup.recipients` to the hospital's age recipient(s).",
        reads_files=True,
    ),
    resource_policy(
        name="container-configure-backup-schedule",
        description="The backup schedule never leaves more time between runs than the RPO.",
        validate=validate_backup_schedule,
        resource_types=[CONTAINER],
        severity=Severity.HIGH,
        citations=[BACKUP_PLAN, RECOVERY_PLAN],
        remediation="Set `hospital:backup.schedule` (cron) and `rpoHours` (24 or less).",
        config_schema=SCHEDULE_SCHEMA,
        running_only=True,
    ),
    stack_policy(
        name="stack-missing-backup-coverage",
        description="A backup job mounts every PHI and config volume read-only.",
        validate=validate_backup_coverage,
        severity=Severity.CRITICAL,
        citations=[BACKUP_PLAN, BACKUP_STORAGE],
        remediation="Enable `hospital:backup` and mount every phi/config volume read-only in it.",
        config_schema=COVERAGE_SCHEMA,
    ),
]

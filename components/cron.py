"""Five-field cron expressions read exactly as the backup job's scheduler reads them
(backup/lib/backup-common.sh), so a schedule the settings accept is the schedule that runs.

The backup settings use it to prove that a schedule meets the recovery point objective.
"""

from __future__ import annotations

import datetime
import itertools
import re
from dataclasses import dataclass

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names standing for lowest, lowest + 1, ...)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, WEEKDAYS),
)
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# The scheduler's word splitting (bash `read -a` with the default IFS).
_BLANKS = re.compile(r"[ \t\n]+")
_NUMBER = re.compile(r"[0-9]{1,2}")
# The gaps are measured over four years from this day, so every leap-day case is in the window;
# the scheduler searches five years ahead for a next run.
WINDOW_START = datetime.date(2025, 1, 1)
WINDOW_DAYS = 4 * 366 + 1
NEXT_RUN_HORIZON = datetime.timedelta(days=5 * 366)


class RareScheduleError(ValueError):
    """A readable schedule that runs fewer than twice in the window: no gap can be measured."""


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression in the container's time zone (UTC for the stack)."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday; a 7 in the expression is folded into 0
    day_star: bool  # the day-of-month field starts with `*`
    weekday_star: bool  # the day-of-week field starts with `*`

    def runs_on(self, day: datetime.date) -> bool:
        """Vixie cron's day rule: when either day field starts with `*`, both must match;
        otherwise a day matching either of them runs."""
        if day.month not in self.months:
            return False
        on_day = day.day in self.days
        on_weekday = day.isoweekday() % 7 in self.weekdays
        if self.day_star or self.weekday_star:
            return on_day and on_weekday
        return on_day or on_weekday

    def times(self) -> list[int]:
        """The minutes after midnight at which a run day runs, earliest first."""
        return sorted(hour * 60 + minute for hour in self.hours for minute in self.minutes)

    def longest_gap(self) -> datetime.timedelta:
        """The longest time without a run over the window, counting the stretches before the
        first and after the last run in it. RareScheduleError when it runs fewer than twice."""
        times = self.times()
        run_days = [
            offset
            for offset in range(WINDOW_DAYS)
            if self.runs_on(WINDOW_START + datetime.timedelta(days=offset))
        ]
        if len(run_days) * len(times) < 2:
            count = len(run_days) * len(times)
            raise RareScheduleError(
                f"runs {count} time{'' if count == 1 else 's'} in four years; a backup schedule "
                "must run again within rpoHours of every run"
            )
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        gaps += [
            (later - earlier) * 1440 - times[-1] + times[0]
            for earlier, later in itertools.pairwise(run_days)
        ]
        gaps += [run_days[0] * 1440 + times[0], (WINDOW_DAYS - run_days[-1]) * 1440 - times[-1]]
        return datetime.timedelta(minutes=max(gaps))

    def next_run(self, after: datetime.datetime) -> datetime.datetime | None:
        """The first whole minute strictly after `after` (naive, the schedule's time zone) at
        which it runs, searching five years ahead like the scheduler; None when there is none."""
        times = self.times()
        limit = after + NEXT_RUN_HORIZON
        day = after.date()
        while datetime.datetime.combine(day, datetime.time()) <= limit:
            if self.runs_on(day):
                for minute in times:
                    moment = datetime.datetime.combine(day, datetime.time()) + datetime.timedelta(
                        minutes=minute
                    )
                    if moment > after:
                        return moment if moment <= limit else None
            day += datetime.timedelta(days=1)
        return None


def parse_cron(expression: str) -> CronSchedule:
    """Parse `minute hour day-of-month month day-of-week` or an @-macro (@hourly, @daily,
    @midnight, @weekly, @monthly, @yearly, @annually).

    A field is a comma list of `*`, a value or a range `a-b`, each optionally followed by
    `/step` (`a/step` runs from a to the field's end). A value is one or two digits, or in the
    month and day-of-week fields a three-letter English name in any case; 0 and 7 are Sunday.
    ValueError says which part cannot be read.
    """
    text = MACROS.get(expression, expression)
    parts = _BLANKS.split(text.strip(" \t\n"))
    if len(parts) != 5:
        raise ValueError("must have five fields: minute hour day-of-month month day-of-week")
    values = [_parse_field(part, *field) for part, field in zip(parts, _FIELDS, strict=True)]
    return CronSchedule(
        expression=expression,
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=frozenset(day % 7 for day in values[4]),
        day_star=parts[2].startswith("*"),
        weekday_star=parts[4].startswith("*"),
    )


def _parse_field(
    text: str, name: str, low: int, high: int, names: tuple[str, ...]
) -> frozenset[int]:
    chosen: set[int] = set()
    for item in text.split(","):
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _NUMBER.fullmatch(step_text) or not 1 <= int(step_text) <= high:
                raise ValueError(f"{name} step {step_text!r} is not a number from 1 to {high}")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, last_text = span.split("-", 1)
            first = _value(first_text, name, low, high, names)
            last = _value(last_text, name, low, high, names)
            if first > last:
                raise ValueError(f"{name} range {span!r} runs backwards")
        else:
            first = _value(span, name, low, high, names)
            last = high if slash else first
        chosen.update(range(first, last + 1, step))
    return frozenset(chosen)


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text.lower() in names:
        return names.index(text.lower()) + low
    if not _NUMBER.fullmatch(text) or not low <= int(text) <= high:
        spelled = f" or {names[0]}-{names[-1]}" if names else ""
        raise ValueError(
            f"{name} value {text!r} is not a number from {low} to {high}{spelled} "
            "(one or two digits)"
        )
    return int(text)

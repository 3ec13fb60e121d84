"""Five-field cron expressions: parsing and the longest gap between two runs.

The backup settings use it to prove that a schedule meets the recovery point objective.
"""

from __future__ import annotations

import datetime
import itertools
from dataclasses import dataclass

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_MACROS = {
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression in the host's local time."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    def runs_on(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        on_day = day.day in self.days
        on_weekday = day.isoweekday() % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return on_day or on_weekday  # cron's rule: either field may match
        return on_day and on_weekday

    def _every_day(self) -> bool:
        return len(self.months) == 12 and not self.days_restricted and not self.weekdays_restricted

    def longest_gap(self, start: datetime.date | None = None) -> datetime.timedelta:
        """The longest time between two consecutive runs over the next four years."""
        start = start or datetime.date(2025, 1, 1)
        times = sorted(datetime.time(h, m) for h in self.hours for m in self.minutes)
        if self._every_day():
            minutes = [t.hour * 60 + t.minute for t in times]
            gaps = [b - a for a, b in itertools.pairwise(minutes)]
            gaps.append(minutes[0] + 24 * 60 - minutes[-1])
            return datetime.timedelta(minutes=max(gaps))
        previous, longest = None, datetime.timedelta(0)
        for offset in range(4 * 366 + 1):
            day = start + datetime.timedelta(days=offset)
            if not self.runs_on(day):
                continue
            for moment in times:
                run = datetime.datetime.combine(day, moment)
                if previous is not None:
                    longest = max(longest, run - previous)
                previous = run
        if previous is None:
            raise ValueError("never runs")
        return longest


def parse_cron(expression: str) -> CronSchedule:
    """Parse `m h dom mon dow` (numbers, `*`, ranges, lists, steps) or an @-macro."""
    text = _MACROS.get(expression.strip(), expression.strip())
    parts = text.split()
    if len(parts) != 5:
        raise ValueError("must have five fields: minute hour day-of-month month day-of-week")
    values = [_parse_field(part, *field) for part, field in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(day % 7 for day in values[4])
    return CronSchedule(
        expression=expression,
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        days_restricted=parts[2] != "*",
        weekdays_restricted=parts[4] != "*",
    )


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    chosen: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = _number(step_text, name, 1, high) if step_text else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, last_text = span.split("-", 1)
            first, last = (
                _number(first_text, name, low, high),
                _number(last_text, name, low, high),
            )
            if first > last:
                raise ValueError(f"{name} range {span} runs backwards")
        else:
            first = _number(span, name, low, high)
            last = high if step_text else first
        chosen.update(range(first, last + 1, step))
    return frozenset(chosen)


def _number(text: str, name: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{name} value {text!r} is not a number from {low} to {high}")
    return int(text)

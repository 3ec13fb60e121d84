"""The three readers of a backup schedule agree: the settings (components/cron.py), the policy
pack's copy (policies/hipaa_rules/backup.py) and the job's scheduler (backup-scheduler).

A schedule the settings accept must be the schedule that runs, and the gap the pack measures
must be the gap the settings measured."""

from __future__ import annotations

import datetime
import os
import subprocess

import pytest
from backup_rig import BIN

from components.cron import RareScheduleError, parse_cron
from policies.hipaa_rules import backup as pack_backup

# 2025-12-04 00:00 UTC, a Thursday.
AFTER = datetime.datetime(2025, 12, 4)
AFTER_EPOCH = int(AFTER.replace(tzinfo=datetime.UTC).timestamp())
RUNS_COMPARED = 12

READABLE = [
    "0 2 * * *",
    "*/15 * * * *",
    "30 1,13 * * *",
    "0 0 * * 7",
    "0 0 * * SUN",
    "0 3 * * mon-fri",
    "0 0 1 * mon",
    "0 0 13 * fri",
    "5/20 22-23 * dec *",
    "0 0 */2 * *",
    "0 0 */10 * mon",
    "0 6 1-7 * */3",
    "0 12 * JAN,Jul *",
    "0 1 * * 1-5/2",
    "59 23 31 12 *",
    "0\t2  * * *",
    " 0 2 * * * ",
    "07 08 * * *",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
]
# Readable, but running once in four years or never: no gap between runs can be measured.
RARE = ["0 4 29 feb *", "0 0 31 2 *", "0 0 30 feb *"]
UNREADABLE = [
    "0 2 * *",
    "0 2 * * * *",
    "60 * * * *",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 * 13 *",
    "0 0 * * 8",
    "1, * * * *",
    ",1 * * * *",
    "*/0 * * * *",
    "*/60 * * * *",
    "5-1 * * * *",
    "0 0 * * sat-mon",
    "001 * * * *",
    "0 0 * foo *",
    "a * * * *",
    "0 0 * * monday",
    "1-2-3 * * * *",
    "@reboot",
    "@DAILY",
    "",
]


def scheduler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "backup-scheduler"), *args],
        env={"PATH": os.environ["PATH"], "TZ": "UTC"},
        capture_output=True,
        text=True,
        check=False,
    )


def scheduler_runs(expression: str) -> list[datetime.datetime]:
    result = scheduler("next", expression, str(AFTER_EPOCH), str(RUNS_COMPARED))
    assert result.returncode == 0, f"scheduler refused {expression!r}: {result.stderr}"
    return [
        datetime.datetime.fromtimestamp(int(line), datetime.UTC).replace(tzinfo=None)
        for line in result.stdout.split()
    ]


def settings_runs(expression: str) -> list[datetime.datetime]:
    schedule, moment, runs = parse_cron(expression), AFTER, []
    for _ in range(RUNS_COMPARED):
        moment = schedule.next_run(moment)
        assert moment is not None, f"{expression!r} stopped running after {runs}"
        runs.append(moment)
    return runs


def pack_reads(expression: str) -> bool:
    try:
        pack_backup.longest_gap_hours(expression)
    except pack_backup.RareScheduleError:
        return True
    except ValueError:
        return False
    return True


# Each readable expression runs at the same minutes in the settings' model and in the job.
@pytest.mark.parametrize("expression", READABLE)
def test_settings_and_scheduler_agree_on_the_next_runs(expression):
    expected = scheduler_runs(expression)

    actual = settings_runs(expression)

    assert actual == expected, f"{expression!r}: settings {actual[:3]}, scheduler {expected[:3]}"


# The pack measures the same longest gap the settings measured.
@pytest.mark.parametrize("expression", READABLE)
def test_pack_and_settings_measure_the_same_longest_gap(expression):
    settings_gap = parse_cron(expression).longest_gap()

    pack_gap = pack_backup.longest_gap_hours(expression)

    assert pack_gap * 3600 == settings_gap.total_seconds(), f"{expression!r}: {pack_gap} h"


# What one reader refuses, the others refuse too: no schedule is accepted by the settings and
# then stops the job at start, and none the job would run is refused by the pack.
@pytest.mark.parametrize("expression", UNREADABLE)
def test_every_reader_refuses_an_unreadable_expression(expression):
    with pytest.raises(ValueError) as refused:
        parse_cron(expression)

    assert not isinstance(refused.value, RareScheduleError), refused.value
    assert scheduler("check", expression).returncode == 2, f"the job accepts {expression!r}"
    assert not pack_reads(expression), f"the pack accepts {expression!r}"


# A schedule that runs once in four years or never is readable, yet no gap between its backups
# can be bounded: the settings and the pack call it rare; the job and the settings still agree on
# its next run, or that it has none.
@pytest.mark.parametrize("expression", RARE)
def test_rare_schedules_are_readable_but_have_no_gap(expression):
    schedule = parse_cron(expression)
    job = scheduler("next", expression, str(AFTER_EPOCH))

    with pytest.raises(RareScheduleError):
        schedule.longest_gap()
    with pytest.raises(pack_backup.RareScheduleError):
        pack_backup.longest_gap_hours(expression)
    assert scheduler("check", expression).returncode == 0, f"the job refuses {expression!r}"
    expected = schedule.next_run(AFTER)
    if expected is None:
        assert job.returncode != 0 and "no run within five years" in job.stderr, job
    else:
        assert job.stdout.split() == [str(int(expected.replace(tzinfo=datetime.UTC).timestamp()))]


# `next` refuses a count or a start that is not a number instead of looping or guessing.
@pytest.mark.parametrize(
    ("after", "count"), [("yesterday", "1"), (str(AFTER_EPOCH), "0"), (str(AFTER_EPOCH), "x")]
)
def test_scheduler_next_refuses_a_bad_start_or_count(after, count):
    result = scheduler("next", "0 2 * * *", after, count)

    assert result.returncode != 0 and result.stdout == "", result.stdout
    assert result.stderr, "a refusal must say why"

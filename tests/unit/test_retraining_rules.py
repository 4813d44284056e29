"""The champion decision rule and the schedule checks, without any service."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from infra.champion import decide
from infra.orchestration.schedules import InvalidSchedule, cron_schedule, next_run_times, project_of_slug


def test_no_champion_promotes_whatever_the_scores_and_mode():
    for promotion in ("auto", "manual"):
        verdict = decide(0.4, None, has_champion=False, promotion=promotion, min_improvement=0.5)
        assert verdict.decision == "promoted" and "no champion" in verdict.reason


@pytest.mark.parametrize(("candidate", "champion", "min_improvement", "expected"), [
    (0.90, 0.90, 0.0, "promoted"),  # equal is enough without a required improvement
    (0.95, 0.90, 0.05, "promoted"),
    (0.94, 0.90, 0.05, "kept"),
    (1.00, 0.10, 1.0, "kept"),  # 1.0 can never be met by an AUROC above 0
    (0.80, 0.90, 0.0, "kept"),
])
def test_auto_promotes_only_a_candidate_that_beats_the_champion_by_the_margin(candidate, champion,
                                                                               min_improvement, expected):
    verdict = decide(candidate, champion, has_champion=True, promotion="auto", min_improvement=min_improvement)
    assert verdict.decision == expected
    assert f"{candidate:.4f}" in verdict.reason and f"{champion:.4f}" in verdict.reason


def test_manual_promotion_and_missing_scores_keep_the_champion():
    manual = decide(0.99, 0.5, has_champion=True, promotion="manual", min_improvement=0.0)
    assert manual.decision == "kept" and "manual" in manual.reason
    for candidate, champion in ((None, 0.9), (0.9, None)):
        verdict = decide(candidate, champion, has_champion=True, promotion="auto", min_improvement=0.0)
        assert verdict.decision == "kept" and "normal and anomalous" in verdict.reason


@pytest.mark.parametrize(("cron", "timezone", "message"), [
    ("0 2 * *", "UTC", "Invalid cron string"),
    ("61 2 * * *", "UTC", "Invalid cron string"),
    ("0 2 * * *", "Mars/Olympus", "unknown timezone"),
    ("0 2 * * *", "../../etc/passwd", "unknown timezone"),
])
def test_bad_cron_or_timezone_is_refused_with_the_reason(cron, timezone, message):
    with pytest.raises(InvalidSchedule, match=message):
        cron_schedule(cron, timezone)


def test_next_runs_are_utc_times_of_the_local_schedule():
    runs = next_run_times("0 2 * * *", "Europe/Berlin")
    assert len(runs) == 3 and runs == sorted(runs)
    for run in runs:
        assert run.tzinfo is UTC
        local = run.astimezone(ZoneInfo("Europe/Berlin"))
        assert (local.hour, local.minute) == (2, 0)
    assert all(timedelta(hours=23) <= later - earlier <= timedelta(hours=25) for earlier, later in pairwise(runs))


def test_a_schedule_slug_names_its_project():
    project = uuid.uuid4()
    assert project_of_slug(f"project-{project}") == project
    assert project_of_slug("project-nope") is None and project_of_slug("CronSchedule") is None
    assert project_of_slug(None) is None

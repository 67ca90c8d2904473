"""Raw data retention (automations.retention): old raw rows go in batches, report totals of their days stay."""

import io
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from automations.models import ActionRun, ReportDirtyDay, ReportRawHorizon
from automations.reports import selectors
from automations.reports.services import report_rollups_update
from automations.retention import months_before, retention_horizon, retention_run
from paminga.progress import Progress
from paminga.services import account_update
from tests.automations.services import require_services
from tests.factories import (
    ActionFactory,
    ActionRunFactory,
    ContactFactory,
    CustomEventFactory,
    EventRecordFactory,
    ImpressionFactory,
    SessionFactory,
    VisitorFactory,
)
from tracking.models import EventRecord, Impression, RejectedHit, Session
from tracking.partitions import month_start, partition_months, partitions_ensure

pytestmark = pytest.mark.django_db


def later(minutes=2):
    # The rollups only take rows written at least a minute ago.
    return timezone.now() + timedelta(minutes=minutes)


def test_months_before_keeps_the_day_or_the_months_last():
    assert months_before(date(2026, 12, 7), 25) == date(2024, 11, 7)
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_before(date(2026, 1, 15), 1) == date(2025, 12, 15)


def build(account, *, days_ago, n=3):
    """A visitor's visit `days_ago` days ago with n page views, n events (conversions attributed to the page
    views), an action run per event and a debugger entry."""
    at = timezone.now() - timedelta(days=days_ago)
    event = CustomEventFactory(account=account, slug=f"demo-{days_ago}", counts_as_conversion=True)
    contact = ContactFactory(account=account, email=f"p{days_ago}@example.com")
    visitor = VisitorFactory(account=account, contact=contact)
    action = ActionFactory(custom_event=event)
    session = SessionFactory(visitor=visitor, started_at=at, last_seen_at=at + timedelta(minutes=n))
    for i in range(n):
        impression = ImpressionFactory(session=session, occurred_at=at + timedelta(minutes=i))
        record = EventRecordFactory(
            custom_event=event,
            contact=contact,
            visitor=visitor,
            session=session,
            source=EventRecord.Source.BEACON,
            occurred_at=at + timedelta(minutes=i, seconds=30),
            attributed_impression=impression,
        )
        ActionRunFactory(action=action, event_record=record, status=ActionRun.Status.SUCCEEDED)
    hit = RejectedHit.objects.create(account=account, reason=RejectedHit.Reason.MALFORMED, message="bad")
    RejectedHit.objects.filter(pk=hit.pk).update(created_at=at)
    return event


def totals(account, day_from, day_to):
    with selectors.report_scope(account=account, start=day_from, end=day_to) as scope:
        overview = selectors.event_overview(scope=scope)
        summary = selectors.conversions_summary(scope=scope)
        pages = selectors.attributed_by_page(scope=scope)
    events = {
        f.event.slug: (f.fires, f.conversions, f.attributed, f.unique_contacts, f.unique_visitors) for f in overview[0]
    }
    return events, (summary.conversions, summary.visits), [(r.value, r.conversions, r.base) for r in pages]


def test_old_raw_rows_are_deleted_in_batches_and_report_totals_stay(account):
    # given: a month's retention; a visit 40 days ago (to go) and one 3 days ago (to stay)
    account_update(account=account, retention_months=1)
    old, recent = build(account, days_ago=40), build(account, days_ago=3)
    report_rollups_update(now=later())
    today = timezone.now().date()
    before = totals(account, today - timedelta(days=60), today)

    # when
    run = retention_run(now=later(), batch_size=2)

    # then: the old rows are gone, two at a time; the recent ones are all there
    assert run.deleted == {
        "events": 3,
        "action_runs": 3,
        "impressions": 3,
        "visits": 1,
        "debugger_entries": 1,
        # The old page views' URLs; the visits' landing URL stays, the recent visit has it too.
        "page_texts": 3,
    }
    assert run.batches == 2 + 2 + 1 + 1 + 1  # events, page views, the visit, the debugger entry, the texts
    assert not EventRecord.objects.filter(custom_event=old).exists()
    assert EventRecord.objects.filter(custom_event=recent).count() == 3
    assert Impression.objects.count() == 3 and Session.objects.count() == 1 and RejectedHit.objects.count() == 1
    assert ActionRun.objects.count() == 3
    # and every report figure of the old days is unchanged, also after the next rollup runs
    assert totals(account, today - timedelta(days=60), today) == before
    report_rollups_update(now=later(5))
    assert totals(account, today - timedelta(days=60), today) == before
    assert ReportRawHorizon.objects.get(account=account).raw_from == retention_horizon(account=account, now=later())[0]


def test_a_rebuild_after_retention_keeps_the_days_before_the_horizon(account):
    account_update(account=account, retention_months=1)
    build(account, days_ago=40), build(account, days_ago=3)
    retention_run(now=later())
    today = timezone.now().date()
    before = totals(account, today - timedelta(days=60), today)

    call_command("reports_rollup", "--rebuild", stdout=io.StringIO())

    assert totals(account, today - timedelta(days=60), today) == before


def test_dirty_marks_before_the_horizon_are_dropped_not_read_raw(account):
    account_update(account=account, retention_months=1)
    old = build(account, days_ago=40)
    report_rollups_update(now=later())
    old_day = EventRecord.objects.filter(custom_event=old).first().occurred_at.date()
    ReportDirtyDay.objects.create(account=account, day=old_day)
    before = totals(account, old_day, old_day)

    retention_run(now=later())

    assert not ReportDirtyDay.objects.filter(account=account).exists()
    assert totals(account, old_day, old_day) == before
    assert before[0][old.slug][0] == 3


def test_rows_not_yet_rolled_up_are_kept_until_they_are(account, monkeypatch):
    account_update(account=account, retention_months=1)
    build(account, days_ago=40)
    # The rollup task cannot run (say its lock is held elsewhere): nothing may be deleted without it.
    monkeypatch.setattr("automations.retention.report_rollups_update", lambda **kwargs: None)

    run = retention_run(now=later())

    assert run.skipped == ["acme"]
    assert EventRecord.objects.count() == 3 and Impression.objects.count() == 3


def test_the_period_is_per_account(account, other_account):
    account_update(account=account, retention_months=1)
    build(account, days_ago=40)
    build(other_account, days_ago=40)

    retention_run(now=later())

    assert not EventRecord.objects.filter(account=account).exists()
    assert EventRecord.objects.filter(account=other_account).count() == 3


def test_retention_run_command(account):
    account_update(account=account, retention_months=1)
    build(account, days_ago=40)
    # Written a while ago, as real old rows are, so that the command's own rollup run (at the real time) takes them.
    EventRecord.objects.update(created_at=timezone.now() - timedelta(hours=1))
    out = io.StringIO()

    call_command("retention_run", stdout=out)

    assert "deleted 3 events, 3 action runs, 3 impressions, 1 visits, 1 debugger entries" in out.getvalue()


def test_retention_progress_counts_every_row_deleted(account):
    # given: a month's retention and a visit 40 days ago
    account_update(account=account, retention_months=1)
    build(account, days_ago=40)
    report_rollups_update(now=later())
    progress = Progress(stream=io.StringIO(), description="Deleting old raw rows", unit="row")

    # when
    run = retention_run(now=later(), batch_size=2, progress=progress)

    # then: the rows of every table, as the run counted them (the visit's landing URL and the page views' URLs are
    # page texts that no row uses any more)
    assert run.deleted["page_texts"] == 4
    assert progress.done == sum(run.deleted.values()) == 15


def test_retention_run_command_prints_its_progress(account):
    account_update(account=account, retention_months=1)
    build(account, days_ago=40)
    EventRecord.objects.update(created_at=timezone.now() - timedelta(hours=1))
    out = io.StringIO()

    call_command("retention_run", stdout=out)

    # Not a terminal: one plain line with the figures at the end.
    assert "Deleting old raw rows: 15 rows, " in out.getvalue()


def test_the_beat_schedule_runs_retention(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["privacy-retention-run"]
    assert entry["task"] == "automations.tasks.retention_run_task"
    assert "report-rollups-update" in settings.CELERY_BEAT_SCHEDULE


def test_whole_months_past_every_accounts_period_are_dropped_keeping_what_kept_rows_refer_to(account, other_account):
    # given: months with partitions of their own; a month's retention here, 25 months in the other account; a visit
    # 100 days ago in each; and here a visit begun on the last evening of a month that ended before any account's
    # horizon, with a conversion 3 days ago attributed to its page view
    require_services(postgresql=True)
    now = timezone.now()
    partitions_ensure(now - timedelta(days=130), now)
    account_update(account=account, retention_months=1)
    account_update(account=other_account, retention_months=25)
    mine, theirs = build(account, days_ago=100), build(other_account, days_ago=100)
    last_evening = datetime.combine(
        month_start(retention_horizon(account=account, now=now)[1]) - timedelta(days=1), time(20), tzinfo=UTC
    )
    visitor = VisitorFactory(account=account)
    visit = SessionFactory(visitor=visitor, started_at=last_evening, last_seen_at=now - timedelta(days=3))
    page_view = ImpressionFactory(session=visit, occurred_at=last_evening)
    conversion = EventRecordFactory(
        custom_event=mine,
        contact=visitor.contact,
        visitor=visitor,
        session=visit,
        occurred_at=now - timedelta(days=3),
        attributed_impression=page_view,
    )
    visitor.current_session = visit
    visitor.save()
    old_month = month_start(EventRecord.objects.filter(custom_event=theirs).first().occurred_at)
    today = now.date()
    report_rollups_update(now=later())
    before = totals(other_account, today - timedelta(days=130), today)

    # when: the other account still keeps that month
    run = retention_run(now=later())

    # then: no month is dropped; this account's old rows go row by row, the other's stay
    assert run.months_dropped == []
    assert EventRecord.objects.filter(custom_event=mine).count() == 1
    assert EventRecord.objects.filter(custom_event=theirs).count() == 3
    assert old_month in partition_months("tracking_eventrecord")

    # when: the other account keeps a month too
    account_update(account=other_account, retention_months=1)
    run = retention_run(now=later())

    # then: every month before both horizons is dropped whole; the other account's old rows are gone with it, and
    # the page view and visit the kept conversion refers to stay, as does every report total
    assert old_month in run.months_dropped and last_evening.date().replace(day=1) in run.months_dropped
    assert old_month not in partition_months("tracking_eventrecord")
    assert not EventRecord.objects.filter(custom_event=theirs).exists()
    assert run.deleted["events"] == 3 and run.deleted["action_runs"] == 3 and run.deleted["impressions"] == 3
    assert list(EventRecord.objects.filter(account=account)) == [conversion]
    assert Impression.objects.get(account=account) == page_view
    assert Session.objects.get(account=account) == visit
    visitor.refresh_from_db()
    assert visitor.current_session_id == visit.pk
    assert totals(other_account, today - timedelta(days=130), today) == before

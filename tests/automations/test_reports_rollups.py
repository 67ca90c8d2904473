"""The rollup runs: what they store, the watermarks, rebuilds, and the cases that change recorded rows."""

import io
from datetime import date, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from automations.models import (
    EventDailyBreakdown,
    EventDailyRollup,
    ReportAccountRollup,
    ReportDirtyDay,
    ReportRollupWatermark,
    TrafficDailyRollup,
)
from automations.reports import aggregates, selectors
from automations.reports.services import report_contact_events_moving, report_rollups_update
from tests.factories import EventRecordFactory
from tracking.models import EventRecord, Impression, Session
from tracking.services import contact_merge

from .reports_fixtures import END, START, build_history, build_other_account_history, utc

pytestmark = pytest.mark.django_db


def later(minutes=2):
    return timezone.now() + timedelta(minutes=minutes)


def figures(h, event, start=START, end=END):
    with selectors.report_scope(account=h.account, start=start, end=end) as s:
        return selectors.event_figures(scope=s, custom_event=event)


def test_a_run_stores_each_day_per_event_with_exact_people():
    h = build_history()

    run = report_rollups_update(now=later())

    assert run.accounts_rebuilt == [h.account.pk]
    rows = {
        (r.custom_event.slug, r.day): (
            r.fires,
            r.conversions,
            r.attributed,
            aggregates.sketch_estimate(r.contact_sketch),
            aggregates.sketch_estimate(r.visitor_sketch),
        )
        for r in EventDailyRollup.objects.filter(account=h.account).select_related("custom_event")
    }
    # Sketches of a handful of ids estimate them exactly (docs/reporting.md: the error bound).
    assert rows == {
        ("watched-video", date(2026, 3, 5)): (1, 0, 0, 1, 1),
        ("watched-video", date(2026, 3, 6)): (1, 0, 0, 1, 1),
        ("requested-demo", date(2026, 3, 6)): (1, 1, 1, 1, 1),
        ("requested-demo", date(2026, 3, 7)): (2, 2, 1, 2, 1),
        ("requested-demo", date(2026, 3, 8)): (1, 1, 1, 1, 1),
        ("watched-video", date(2026, 3, 8)): (1, 1, 1, 1, 1),
        ("requested-demo", date(2026, 3, 9)): (1, 1, 1, 1, 1),
    }
    pages = TrafficDailyRollup.objects.filter(account=h.account, dimension="page_views")
    assert sorted((r.day.day, r.value, r.count) for r in pages) == [
        (6, "https://acme.test/demo", 1),
        (6, "https://acme.test/pricing", 1),
        (7, "https://acme.test/pricing", 2),
        (8, "https://acme.test/pricing", 1),
        (8, "https://acme.test/product", 1),
        (9, "https://acme.test/product", 1),
    ]
    metadata = EventDailyBreakdown.objects.filter(account=h.account, dimension="metadata", custom_event=h.demo)
    assert sorted((r.day.day, r.key, r.value, r.fires) for r in metadata) == [
        (6, "planTier", "enterprise", 1),
        (7, "planTier", "enterprise", 1),
        (7, "planTier", "pro", 1),
        (7, "seats", "12", 1),
        (8, "planTier", "enterprise", 1),
        (8, "trial", "true", 1),
        (9, "planTier", "starter", 1),
    ]


def test_watermarks_move_to_the_newest_rows_a_minute_old():
    h = build_history()
    newest = EventRecord.objects.order_by("-pk").first().pk

    # Run "now": the records were written less than a minute ago, so none is passed yet.
    report_rollups_update()
    marks = dict(ReportRollupWatermark.objects.values_list("table", "upto_id"))
    assert marks["events"] == 0
    # Page views and visits are dated in the past: all passed.
    assert marks["impressions"] == Impression.objects.order_by("-pk").first().pk
    assert marks["sessions"] == Session.objects.order_by("-pk").first().pk
    # Nothing is lost meanwhile: the records above the watermark are read raw.
    assert figures(h, h.demo).fires == 4

    report_rollups_update(now=later())
    marks = {m.table: m for m in ReportRollupWatermark.objects.all()}
    assert (marks["events"].upto_id, marks["events"].previous_upto_id) == (newest, 0)
    assert figures(h, h.demo).fires == 4


def test_runs_are_idempotent():
    build_other_account_history()
    h = build_history()
    report_rollups_update(now=later())

    def snapshot():
        return (
            sorted(EventDailyRollup.objects.values_list("account", "custom_event", "day", "fires", "contact_sketch")),
            sorted(
                EventDailyBreakdown.objects.values_list(
                    "account", "custom_event", "day", "dimension", "key", "value", "fires"
                )
            ),
            sorted(TrafficDailyRollup.objects.values_list("account", "day", "dimension", "value", "count")),
        )

    before = snapshot()
    second = report_rollups_update(now=later())
    assert snapshot() == before
    assert second.accounts_rebuilt == []
    # Nothing new and the last window still holds what was folded: no day is touched.
    assert (second.days_updated, second.rows_folded, second.days_rebuilt) == (0, 0, 0)
    third = report_rollups_update(now=later())
    assert (third.days_updated, snapshot()) == (0, before)
    assert figures(h, h.demo).fires == 4


def test_rows_recorded_after_a_run_are_counted_then_rolled_up():
    h = build_history()
    report_rollups_update(now=later())
    extra = EventRecordFactory(
        account=h.account,
        custom_event=h.demo,
        contact=h.contacts["c4"],
        occurred_at=utc(2026, 3, 7, 12),
        is_conversion=True,
    )

    fig = figures(h, h.demo)
    assert (fig.fires, fig.unique_contacts, fig.daily_fires) == (5, 4, [1, 3, 1])

    report_rollups_update(now=later())
    assert EventDailyRollup.objects.get(custom_event=h.demo, day=date(2026, 3, 7)).fires == 3
    fig = figures(h, h.demo)
    assert (fig.fires, fig.unique_contacts, fig.daily_fires) == (5, 4, [1, 3, 1])
    assert extra.pk <= ReportRollupWatermark.objects.get(table="events").upto_id


def test_a_row_committed_late_below_the_watermark_is_picked_up_by_the_next_run():
    h = build_history()
    report_rollups_update(now=later())
    report_rollups_update(now=later())
    # A row whose transaction was still open during the last run: its id is below the watermark the run set.
    late = EventRecordFactory(
        account=h.account, custom_event=h.demo, contact=h.contacts["c4"], occurred_at=utc(2026, 3, 7, 12)
    )
    ReportRollupWatermark.objects.filter(table="events").update(upto_id=late.pk)
    assert figures(h, h.demo).fires == 4  # in neither half until the next run

    report_rollups_update(now=later())

    assert EventDailyRollup.objects.get(custom_event=h.demo, day=date(2026, 3, 7)).fires == 3
    assert figures(h, h.demo).fires == 5


def test_a_merge_keeps_unique_contacts_exact():
    h = build_history()
    report_rollups_update(now=later())
    anonymous, known = h.contacts["c3"], h.contacts["c1"]

    contact_merge(source=anonymous, target=known)

    assert sorted(ReportDirtyDay.objects.values_list("day", flat=True)) == [date(2026, 3, 8), date(2026, 3, 9)]
    # c3's occurrence on 8 March now belongs to c1: c1 and c2 remain.
    assert figures(h, h.demo).unique_contacts == 2
    report_rollups_update(now=later())
    assert ReportDirtyDay.objects.count() == 0
    assert figures(h, h.demo).unique_contacts == 2
    assert figures(h, h.demo).unique_visitors == 2


def test_a_time_zone_change_reads_raw_until_the_rollups_are_rebuilt():
    h = build_history()
    report_rollups_update(now=later())
    h.account.time_zone = "UTC"
    h.account.save()

    # In UTC, records 1 and 2 are on 7 March, record 3 on 8 March, record 4 (03:59 on 9 March) on 9 March.
    fig = figures(h, h.demo)
    assert (fig.fires, fig.daily_fires) == (3, [0, 2, 1])
    with selectors.report_scope(account=h.account, start=START, end=END) as s:
        assert s.rolled is False

    run = report_rollups_update(now=later())
    assert run.accounts_rebuilt == [h.account.pk]
    assert ReportAccountRollup.objects.get(account=h.account).time_zone == "UTC"
    assert set(EventDailyRollup.objects.filter(custom_event=h.demo).values_list("day", flat=True)) == {
        date(2026, 3, 7),
        date(2026, 3, 8),
        date(2026, 3, 9),
    }
    assert figures(h, h.demo).daily_fires == [0, 2, 1]


def test_deleting_an_event_deletes_its_rollups(django_capture_on_commit_callbacks):
    from custom_events.services import custom_event_delete

    h = build_history()
    report_rollups_update(now=later())
    with django_capture_on_commit_callbacks(execute=True):  # and its background delete runs
        custom_event_delete(custom_event=h.video)
    assert not EventDailyRollup.objects.filter(custom_event_id=h.video.pk).exists()
    assert not EventDailyBreakdown.objects.filter(custom_event_id=h.video.pk).exists()
    with selectors.report_scope(account=h.account, start=START, end=END) as s:
        rows, overall = selectors.event_overview(scope=s)
    assert [r.event.slug for r in rows] == ["requested-demo"] and overall.fires == 4


def test_metadata_values_are_capped_per_key(monkeypatch):
    h = build_history()
    monkeypatch.setattr(aggregates, "METADATA_VALUES_PER_KEY", 2)
    for n in range(3):
        EventRecordFactory(
            account=h.account,
            custom_event=h.demo,
            contact=h.contacts["c1"],
            occurred_at=utc(2026, 3, 7, 12, n),
            metadata={"orderId": f"order-{n}"} if n < 2 else {"orderId": "order-0"},
        )
    report_rollups_update(now=later())
    rows = EventDailyBreakdown.objects.filter(custom_event=h.demo, day=date(2026, 3, 7), key="orderId")
    assert sorted((r.value, r.fires) for r in rows) == [("order-0", 2), ("order-1", 1)]
    monkeypatch.setattr(aggregates, "METADATA_VALUES_PER_KEY", 1)
    report_contact_events_moving(contact=h.contacts["c1"])  # marks the days for the next run
    report_rollups_update(now=later())
    rows = EventDailyBreakdown.objects.filter(custom_event=h.demo, day=date(2026, 3, 7), key="orderId")
    assert sorted((r.value, r.fires) for r in rows) == [("order-0", 2), (aggregates.OTHER, 1)]
    with selectors.report_scope(account=h.account, start=START, end=END) as s:
        table = selectors.event_metadata_breakdown(scope=s, custom_event=h.demo, key="orderId")
    assert [(r.label, r.fires) for r in table] == [("order-0", 2), ("(other values)", 1)]
    # A value summed into "(other values)" is still found by the occurrence filter.
    with selectors.report_scope(account=h.account, start=START, end=END) as s:
        found = selectors.event_occurrences(
            scope=s, custom_event=h.demo, metadata_key="orderId", metadata_value="order-1"
        )
    assert [r.metadata for r in found] == [{"orderId": "order-1"}]


def test_reports_rollup_command():
    h = build_history()
    out = io.StringIO()
    call_command("reports_rollup", stdout=out)
    assert "1 account(s) rebuilt" in out.getvalue()

    out = io.StringIO()
    call_command("reports_rollup", "--rebuild", "--account", "acme", stdout=out)
    assert "1 account(s) rebuilt" in out.getvalue()
    assert figures(h, h.demo).fires == 4

    with pytest.raises(CommandError, match="No account with the slug “nope”"):
        call_command("reports_rollup", "--rebuild", "--account", "nope", stdout=io.StringIO())
    assert ReportAccountRollup.objects.filter(account=h.account).exists()


def test_the_periodic_task_runs_a_rollup():
    from automations.reports.tasks import report_rollups_update_task

    h = build_history()
    report_rollups_update_task.delay()
    assert ReportAccountRollup.objects.filter(account=h.account, time_zone="America/New_York").exists()

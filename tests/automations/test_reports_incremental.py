"""Rollup runs cost what is new: they fold the rows since the last run into the stored rollups, which then equal
a rebuild from scratch; a rebuild goes a chunk of days per transaction and resumes after an interruption."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from automations.models import (
    EventDailyBreakdown,
    EventDailyRollup,
    ReportAccountRollup,
    ReportRebuild,
    TrafficDailyRollup,
)
from automations.reports import aggregates, selectors, services
from automations.reports.services import report_rollups_update
from custom_events.models import MarketingChannel
from tests.factories import EventRecordFactory, ImpressionFactory, SessionFactory
from tracking.models import EventRecord

from .reports_fixtures import END, START, build_history, build_other_account_history, utc

pytestmark = pytest.mark.django_db


def later(minutes=2):
    return timezone.now() + timedelta(minutes=minutes)


def snapshot(account):
    """The account's rollups as comparable values (sketches by their estimate: a merged sketch and a sketch built
    in one go estimate alike for these counts, but are not the same bytes)."""
    return (
        sorted(
            (r.custom_event_id, r.day, r.fires, r.conversions, r.attributed)
            + (aggregates.sketch_estimate(r.contact_sketch), aggregates.sketch_estimate(r.visitor_sketch))
            for r in EventDailyRollup.objects.filter(account=account)
        ),
        sorted(
            EventDailyBreakdown.objects.filter(account=account).values_list(
                "custom_event", "day", "dimension", "key", "value", "fires", "conversions"
            )
        ),
        sorted(TrafficDailyRollup.objects.filter(account=account).values_list("day", "dimension", "value", "count")),
    )


def more_traffic(h):
    """New rows on days already rolled up and on a new day, for both events, with new and known values."""
    session = SessionFactory(
        account=h.account,
        visitor=h.visitors["v4"],
        started_at=utc(2026, 3, 7, 18),
        last_seen_at=utc(2026, 3, 7, 18),
        channel=MarketingChannel.PAID_SEARCH,
    )
    page = ImpressionFactory(
        account=h.account,
        session=session,
        visitor=session.visitor,
        url="https://acme.test/pricing",
        occurred_at=utc(2026, 3, 7, 18),
    )
    ImpressionFactory(
        account=h.account,
        session=session,
        visitor=session.visitor,
        url="https://acme.test/new",
        occurred_at=utc(2026, 3, 12, 18),
    )
    for n, (event, contact, at) in enumerate(
        [
            (h.demo, "c4", utc(2026, 3, 7, 18, 1)),
            (h.demo, "c1", utc(2026, 3, 7, 18, 2)),
            (h.video, "c2", utc(2026, 3, 8, 15)),
            (h.video, "c2", utc(2026, 3, 12, 15)),
        ]
    ):
        EventRecordFactory(
            account=h.account,
            custom_event=event,
            contact=h.contacts[contact],
            visitor=h.visitors["v4"] if n == 0 else None,
            session=session if n == 0 else None,
            source=EventRecord.Source.BEACON if n == 0 else EventRecord.Source.API,
            occurred_at=at,
            is_conversion=event.counts_as_conversion,
            attributed_impression=page if n == 0 else None,
            marketing_channel=MarketingChannel.PAID_SEARCH,
            utm_source="google" if n else "newsletter",
            page_url="https://acme.test/pricing",
            metadata={"planTier": "enterprise", "seats": n} if n < 3 else None,
        )


def test_a_run_folds_only_the_new_rows_and_equals_a_rebuild():
    build_other_account_history()
    h = build_history()
    report_rollups_update(now=later())
    more_traffic(h)

    run = report_rollups_update(now=later())

    # 4 events, 2 page views and 1 visit folded; nothing rebuilt from the raw rows.
    assert (run.rows_folded, run.days_rebuilt, run.accounts_rebuilt) == (7, 0, [])
    assert run.days_updated == 3  # 7, 8 and 12 March
    folded = snapshot(h.account)
    ReportAccountRollup.objects.filter(account=h.account).delete()
    assert report_rollups_update(now=later()).accounts_rebuilt == [h.account.pk]
    assert snapshot(h.account) == folded
    with selectors.report_scope(account=h.account, start=START, end=END) as s:
        fig = selectors.event_figures(scope=s, custom_event=h.demo)
    assert (fig.fires, fig.unique_contacts, fig.unique_visitors) == (6, 4, 3)


def test_folded_metadata_is_capped_like_a_rebuild(monkeypatch):
    h = build_history()
    monkeypatch.setattr(aggregates, "METADATA_VALUES_PER_KEY", 2)
    report_rollups_update(now=later())
    for n in range(4):
        EventRecordFactory(
            account=h.account,
            custom_event=h.demo,
            contact=h.contacts["c1"],
            occurred_at=utc(2026, 3, 7, 12, n),
            metadata={"orderId": "order-a" if n < 2 else f"order-{n}"},
        )
    report_rollups_update(now=later())
    rows = EventDailyBreakdown.objects.filter(custom_event=h.demo, day=date(2026, 3, 7), key="orderId")
    assert sorted((r.value, r.fires) for r in rows) == [("order-2", 1), ("order-a", 2), (aggregates.OTHER, 1)]
    # A new value that does not make the top 2 joins "(other values)": the sum grows.
    EventRecordFactory(
        account=h.account,
        custom_event=h.demo,
        contact=h.contacts["c1"],
        occurred_at=utc(2026, 3, 7, 13),
        metadata={"orderId": "order-9"},
    )
    report_rollups_update(now=later())
    rows = EventDailyBreakdown.objects.filter(custom_event=h.demo, day=date(2026, 3, 7), key="orderId")
    assert sorted((r.value, r.fires) for r in rows) == [("order-2", 1), ("order-a", 2), (aggregates.OTHER, 2)]


def test_an_interrupted_rebuild_resumes_where_it_stopped(monkeypatch):
    h = build_history()
    monkeypatch.setattr(services, "CHUNK_DAYS", 1)
    real = services._days_rebuild
    chunks = []

    def interrupted(**kwargs):
        if len(chunks) == 2:
            raise KeyboardInterrupt
        chunks.append(kwargs["day_from"])
        return real(**kwargs)

    monkeypatch.setattr(services, "_days_rebuild", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report_rollups_update(now=later())

    rebuild = ReportRebuild.objects.get(account=h.account)
    assert rebuild.done_through == chunks[-1] == rebuild.day_from + timedelta(days=1)
    # Until it is finished, reports read the raw rows, exactly.
    with selectors.report_scope(account=h.account, start=START, end=END) as s:
        assert s.rolled is False
        assert selectors.event_figures(scope=s, custom_event=h.demo).fires == 4
    more_traffic(h)  # recorded meanwhile: folded in when the rebuild finishes

    monkeypatch.setattr(services, "_days_rebuild", lambda **kwargs: (chunks.append(kwargs["day_from"]), real(**kwargs)))
    run = report_rollups_update(now=later())

    assert run.accounts_rebuilt == [h.account.pk]
    # Each day once: the two done before the interruption were not done again.
    assert len(chunks) == len(set(chunks)) == (rebuild.day_to - rebuild.day_from).days + 1
    assert not ReportRebuild.objects.exists()
    resumed = snapshot(h.account)
    ReportAccountRollup.objects.filter(account=h.account).delete()
    report_rollups_update(now=later())
    assert snapshot(h.account) == resumed


def test_the_command_shows_the_progress_of_a_rebuild():
    import io

    from django.core.management import call_command

    build_history()
    out = io.StringIO()
    call_command("reports_rollup", stdout=out)
    assert "Rolling up: " in out.getvalue() and "days" in out.getvalue()

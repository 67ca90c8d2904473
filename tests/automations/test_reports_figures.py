"""Every report figure against the hand-counted history of reports_fixtures, read three ways: from the raw rows
only (no rollup run yet), from the rollups only, and mixed (half rolled up, the rest above the watermark, plus a
day marked dirty)."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from automations.models import ReportDirtyDay
from automations.reports import selectors
from automations.reports.services import report_days_invalidate, report_rollups_update

from .reports_fixtures import DAYS, END, START, build_history, build_other_account_history

pytestmark = pytest.mark.django_db


def roll_up():
    # Rows are only rolled up once a minute old: pretend the run happens a little later.
    return report_rollups_update(now=timezone.now() + timedelta(minutes=2))


@pytest.fixture(params=["raw", "rolled", "mixed"])
def history(request):
    build_other_account_history()
    if request.param == "mixed":
        h = build_history(midway=lambda h: roll_up())
        report_days_invalidate(account=h.account, days=[date(2026, 3, 7)])
    else:
        h = build_history()
        if request.param == "rolled":
            roll_up()
    h.mode = request.param
    return h


def scope(h, start=START, end=END):
    return selectors.report_scope(account=h.account, start=start, end=end)


def test_the_modes_read_what_they_say(history):
    with scope(history) as s:
        assert s.rolled is (history.mode != "raw")
        assert s.dirty == ({date(2026, 3, 7)} if history.mode == "mixed" else set())
        tail = [list(qs.values_list("pk", flat=True)) for qs in s.raw_rows("events")]
    if history.mode == "rolled":
        assert tail == [[]]
    if history.mode == "mixed":
        # Above the watermark: records 4, 6 and 7 (5 and 8 are outside the range); the dirty day: records 2, 3.
        r = history.records
        assert sorted(tail[0]) == sorted([r[4].pk, r[6].pk, r[7].pk])
        assert sorted(tail[1]) == sorted([r[2].pk, r[3].pk])


def test_overview(history):
    with scope(history) as s:
        rows, overall = selectors.event_overview(scope=s)

    by_slug = {r.event.slug: r for r in rows}
    demo, video = by_slug["requested-demo"], by_slug["watched-video"]
    assert [r.event.slug for r in rows] == ["requested-demo", "watched-video"]  # most fires first
    assert (demo.fires, demo.unique_contacts, demo.unique_visitors, demo.conversions, demo.attributed) == (
        4,
        3,
        2,
        4,
        3,
    )
    assert (demo.daily_fires, demo.daily_conversions) == ([1, 2, 1], [1, 2, 1])
    # Its definition changed: one occurrence before (not a conversion), one after.
    assert (video.fires, video.unique_contacts, video.unique_visitors, video.conversions, video.attributed) == (
        2,
        2,
        2,
        1,
        1,
    )
    assert (video.daily_fires, video.daily_conversions) == ([1, 0, 1], [0, 0, 1])
    assert video.conversion_rate == 0.5
    # Across events: c1, c2, c3, c4 and v1, v3, v4, each counted once.
    assert (overall.fires, overall.unique_contacts, overall.unique_visitors, overall.conversions) == (6, 4, 3, 5)
    assert overall.daily_fires == [2, 2, 2]


def test_overview_sorting(history):
    with scope(history) as s:
        by_name = selectors.event_overview(scope=s, sort="name", descending=False)[0]
        by_conversions_asc = selectors.event_overview(scope=s, sort="conversions", descending=False)[0]
        by_visitors = selectors.event_overview(scope=s, sort="unique_visitors", descending=True)[0]
    assert [r.event.slug for r in by_name] == ["requested-demo", "watched-video"]
    assert [r.event.slug for r in by_conversions_asc] == ["watched-video", "requested-demo"]
    # A tie (2 and 2) keeps the alphabetical order.
    assert [r.event.slug for r in by_visitors] == ["requested-demo", "watched-video"]


def test_day_boundaries_in_the_account_time_zone(history):
    # 9 March starts at 04:00 UTC (daylight saving time began on 8 March): record 5 at 04:00 UTC is on 9 March.
    with scope(history, date(2026, 3, 9), date(2026, 3, 9)) as s:
        demo = selectors.event_figures(scope=s, custom_event=history.demo)
        video = selectors.event_figures(scope=s, custom_event=history.video)
    assert (demo.fires, demo.daily_fires) == (1, [1])
    assert video.fires == 0
    # 5 March ends at 05:00 UTC on 6 March: record 8 at 04:59 UTC is on 5 March.
    with scope(history, date(2026, 3, 5), date(2026, 3, 5)) as s:
        assert selectors.event_figures(scope=s, custom_event=history.video).fires == 1
    # One day alone: 7 March holds records 2 and 3 (00:00 and 23:59 local).
    with scope(history, date(2026, 3, 7), date(2026, 3, 7)) as s:
        demo = selectors.event_figures(scope=s, custom_event=history.demo)
    assert (demo.fires, demo.unique_contacts, demo.unique_visitors) == (2, 2, 1)


def test_event_breakdowns(history):
    def table(dimension, event=None):
        with scope(history) as s:
            rows = selectors.event_breakdown(scope=s, custom_event=event or history.demo, dimension=dimension)
        return [(r.label, r.fires, r.conversions) for r in rows]

    assert table("source") == [("Beacon", 3, 3), ("API", 1, 1)]
    assert table("channel") == [
        ("(not set)", 1, 1),
        ("Email marketing", 1, 1),
        ("Organic search", 1, 1),
        ("Paid search", 1, 1),
    ]
    assert table("utm_source") == [("(not set)", 2, 2), ("google", 1, 1), ("newsletter", 1, 1)]
    assert table("utm_medium") == [("(not set)", 2, 2), ("cpc", 1, 1), ("email", 1, 1)]
    assert table("utm_campaign") == [("(not set)", 2, 2), ("brand", 1, 1), ("march", 1, 1)]
    # Pages are URLs without query string and fragment.
    assert table("page") == [("https://acme.test/pricing", 2, 2), ("(no page)", 1, 1), ("https://acme.test/demo", 1, 1)]
    assert table("page", history.video) == [("https://acme.test/product", 2, 1)]
    with scope(history) as s:
        shares = [r.share for r in selectors.event_breakdown(scope=s, custom_event=history.demo, dimension="page")]
    assert shares == [0.5, 0.25, 0.25]


def test_attribution(history):
    with scope(history) as s:
        pages = selectors.attributed_by_page(scope=s, custom_event=history.demo)
        channels = selectors.attributed_by_channel(scope=s, custom_event=history.demo)
        video_pages = selectors.attributed_by_page(scope=s, custom_event=history.video)

    # Pricing: attributed records 1 and 4; 4 page views in the range (imp1, imp3, imp5, imp6). Demo: 1 of 1.
    assert [(r.label, r.conversions, r.base, r.rate) for r in pages] == [
        ("https://acme.test/pricing", 2, 4, 0.5),
        ("https://acme.test/demo", 1, 1, 1.0),
    ]
    assert [(r.label, r.conversions) for r in channels] == [
        ("Direct traffic", 1),
        ("Organic search", 1),
        ("Paid search", 1),
    ]
    # imp7 (the same page on 9 March) is outside the range: 1 of 1.
    assert [(r.label, r.conversions, r.base, r.rate) for r in video_pages] == [("https://acme.test/product", 1, 1, 1.0)]


def test_metadata(history):
    with scope(history) as s:
        keys = selectors.event_metadata_keys(scope=s, custom_event=history.demo)
        tiers = selectors.event_metadata_breakdown(scope=s, custom_event=history.demo, key="planTier")
        seats = selectors.event_metadata_breakdown(scope=s, custom_event=history.demo, key="seats")
        trial = selectors.event_metadata_breakdown(scope=s, custom_event=history.demo, key="trial")
        missing = selectors.event_metadata_breakdown(scope=s, custom_event=history.demo, key="nope")
        video_keys = selectors.event_metadata_keys(scope=s, custom_event=history.video)
    assert keys == ["planTier", "seats", "trial"]
    assert [(r.value, r.fires, r.conversions) for r in tiers] == [("enterprise", 3, 3), ("pro", 1, 1)]
    assert [(r.value, r.fires) for r in seats] == [("12", 1)]
    assert [(r.value, r.fires) for r in trial] == [("true", 1)]
    assert missing == []
    assert video_keys == ["videoTitle"]


def test_occurrences_newest_first_and_filtered_by_metadata(history):
    r = history.records
    with scope(history) as s:
        everything = list(selectors.event_occurrences(scope=s, custom_event=history.demo))
        enterprise = list(
            selectors.event_occurrences(
                scope=s, custom_event=history.demo, metadata_key="planTier", metadata_value="enterprise"
            )
        )
        with_seats = list(selectors.event_occurrences(scope=s, custom_event=history.demo, metadata_key="seats"))
        numeric = list(
            selectors.event_occurrences(scope=s, custom_event=history.demo, metadata_key="seats", metadata_value="12")
        )
        boolean = list(
            selectors.event_occurrences(scope=s, custom_event=history.demo, metadata_key="trial", metadata_value="true")
        )
        page_two = list(selectors.event_occurrences(scope=s, custom_event=history.demo, before_id=r[3].pk, limit=1))
    assert everything == [r[4], r[3], r[2], r[1]]
    assert enterprise == [r[4], r[3], r[1]]
    assert with_seats == [r[2]] and numeric == [r[2]]
    assert boolean == [r[4]]
    assert page_two == [r[2]]


def test_conversions(history):
    with scope(history) as s:
        summary = selectors.conversions_summary(scope=s)
        channels = selectors.conversions_by_channel(scope=s)
        pages = selectors.attributed_by_page(scope=s)

    assert (summary.conversions, summary.attributed, summary.visits, summary.page_views) == (5, 4, 6, 6)
    assert summary.conversion_rate == 5 / 6
    assert (summary.daily_conversions, summary.daily_attributed) == ([1, 2, 2], [1, 1, 2])
    assert [(f.event.slug, f.conversions, f.attributed, f.fires) for f in summary.by_event] == [
        ("requested-demo", 4, 3, 4),
        ("watched-video", 1, 1, 2),
    ]
    # Visits: paid search s1, s5, s6; organic s2; direct s3; referral s4 (s7 is on 9 March).
    assert [(r.value, r.conversions, r.base, r.rate) for r in channels] == [
        ("", 1, 0, None),
        ("EMAIL_MARKETING", 1, 0, None),
        ("ORGANIC_SEARCH", 1, 1, 1.0),
        ("PAID_SEARCH", 1, 3, 1 / 3),
        ("REFERRAL", 1, 1, 1.0),
    ]
    assert [(r.label, r.conversions, r.base, r.rate) for r in pages] == [
        ("https://acme.test/pricing", 2, 4, 0.5),
        ("https://acme.test/demo", 1, 1, 1.0),
        ("https://acme.test/product", 1, 1, 1.0),
    ]


def test_days_with_nothing_are_zero(history):
    with scope(history, date(2025, 1, 1), date(2025, 1, 3)) as s:
        rows, overall = selectors.event_overview(scope=s)
        summary = selectors.conversions_summary(scope=s)
    assert [(r.fires, r.unique_contacts, r.daily_fires) for r in rows] == [(0, 0, [0, 0, 0])] * 2
    assert (overall.fires, overall.unique_contacts, summary.visits, summary.by_event) == (0, 0, 0, [])
    assert s.days == [date(2025, 1, 1), date(2025, 1, 2), date(2025, 1, 3)]


def test_default_range_is_the_last_30_days_in_the_account_time_zone(history):
    # 02:00 UTC on 1 April is still 31 March in New York.
    now = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
    assert selectors.report_default_range(account=history.account, now=now) == (date(2026, 3, 2), date(2026, 3, 31))
    assert DAYS == [START, START + timedelta(days=1), END]


def test_dirty_marks_are_cleared_by_the_next_run(history):
    roll_up()
    assert ReportDirtyDay.objects.count() == 0
    with scope(history) as s:
        assert s.dirty == set()
        assert selectors.event_figures(scope=s, custom_event=history.demo).unique_contacts == 3


def test_a_metadata_filter_pages_through_the_days_that_hold_matches(history):
    r = history.records

    def page(value, before=None):
        with scope(history) as s:
            return selectors.event_occurrences(
                scope=s,
                custom_event=history.demo,
                metadata_key="planTier",
                metadata_value=value,
                before_id=before,
                limit=1,
            )

    assert page("enterprise") == [r[4]]
    assert page("enterprise", r[4].pk) == [r[3]]
    assert page("enterprise", r[3].pk) == [r[1]]
    assert page("enterprise", r[1].pk) == []
    assert page("pro") == [r[2]]
    assert page("nobody") == []

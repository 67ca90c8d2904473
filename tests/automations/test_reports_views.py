"""The report pages and their CSV downloads, on the hand-counted history of reports_fixtures."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from automations.reports.selectors import report_default_range
from automations.reports.services import report_rollups_update
from tests.factories import EventRecordFactory, MembershipFactory, UserFactory

from .reports_fixtures import TZ, build_history, build_other_account_history, utc

pytestmark = pytest.mark.django_db

RANGE = "start=2026-03-06&end=2026-03-08"


@pytest.fixture
def history(account):
    account.time_zone = TZ
    account.save()
    other, other_event = build_other_account_history()
    h = build_history(account=account)
    report_rollups_update(now=timezone.now() + timedelta(minutes=2))
    h.other, h.other_event = other, other_event
    return h


def get_csv(client, url) -> list[list[str]]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="')
    text = b"".join(response.streaming_content).decode()
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_overview_page(client_logged_in, history):
    response = client_logged_in.get(f"{reverse('reports:overview')}?{RANGE}")

    assert response.status_code == 200
    rows = response.context["rows"]
    assert [(r.event.slug, r.fires, r.unique_contacts, r.unique_visitors, r.conversions) for r in rows] == [
        ("requested-demo", 4, 3, 2, 4),
        ("watched-video", 2, 2, 2, 1),
    ]
    body = response.content.decode()
    assert body.count('class="sparkline"') == 2 and '<svg class="chart"' in body
    assert f'href="{reverse("reports:event", args=[history.demo.pk])}?{RANGE.replace("&", "&amp;")}"' in body
    assert "6 Mar 2026 – 8 Mar 2026, days in the account's time zone (America/New_York)" in body
    # The sorted column says so.
    assert 'aria-sort="descending"' in body
    assert "Globex" not in body and "globex" not in body


def test_overview_sorting_links(client_logged_in, history):
    url = reverse("reports:overview")
    response = client_logged_in.get(f"{url}?{RANGE}&sort=name&dir=asc")
    assert [r.event.slug for r in response.context["rows"]] == ["requested-demo", "watched-video"]
    response = client_logged_in.get(f"{url}?{RANGE}&sort=conversions&dir=asc")
    assert [r.event.slug for r in response.context["rows"]] == ["watched-video", "requested-demo"]
    # The active column's link reverses the order; the others start descending (the name ascending).
    body = response.content.decode()
    assert "sort=conversions&amp;dir=desc" in body and "sort=fires&amp;dir=desc" in body
    assert "sort=name&amp;dir=asc" in body
    # An unknown column falls back to fires, most first.
    response = client_logged_in.get(f"{url}?{RANGE}&sort=password&dir=sideways")
    assert response.status_code == 200
    assert [r.event.slug for r in response.context["rows"]] == ["requested-demo", "watched-video"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("start=2026-03-09&end=2026-03-01", "The start date is after the end date."),
        ("start=2024-01-01&end=2026-03-01", "Choose at most 366 days."),
        ("start=2026-13-01&end=2026-03-01", "Enter a valid date."),
        ("start=1999-12-01&end=2000-01-02", "Reports start on 1 January 2000 at the earliest."),
        ("start=2026-03-01&end=2099-01-01", "The end date is in the future."),
        # the ends of the calendar: no arithmetic overflow, a message
        ("start=9999-12-31", "The start date is in the future."),
        ("end=0001-01-01", "Reports start on 1 January 2000 at the earliest."),
        ("start=0001-01-01", "Reports start on 1 January 2000 at the earliest."),
    ],
)
def test_a_bad_range_shows_why_and_the_default_range(client_logged_in, history, query, message):
    response = client_logged_in.get(f"{reverse('reports:overview')}?{query}")

    assert response.status_code == 200
    assert message in response.content.decode()
    assert (response.context["start"], response.context["end"]) == report_default_range(account=history.account)
    csv_response = client_logged_in.get(f"{reverse('reports:overview_csv')}?{query}")
    assert csv_response.status_code == 400
    assert message in csv_response.content.decode()


def test_one_date_only_takes_30_days_from_it(client_logged_in, history):
    response = client_logged_in.get(f"{reverse('reports:overview')}?start=2026-03-06")
    assert (str(response.context["start"]), str(response.context["end"])) == ("2026-03-06", "2026-04-04")
    response = client_logged_in.get(f"{reverse('reports:overview')}?end=2026-03-08")
    assert (str(response.context["start"]), str(response.context["end"])) == ("2026-02-07", "2026-03-08")


def test_overview_csv(client_logged_in, history):
    rows = get_csv(client_logged_in, f"{reverse('reports:overview_csv')}?{RANGE}")
    assert rows == [
        ["event", "slug", "counts_as_conversion", "fires", "unique_contacts", "unique_visitors", "conversions"],
        ["Requested Demo", "requested-demo", "true", "4", "3", "2", "4"],
        ["Watched Video", "watched-video", "true", "2", "2", "2", "1"],
        ["All events", "", "", "6", "4", "3", "5"],
    ]


def test_event_report_page(client_logged_in, history):
    url = reverse("reports:event", args=[history.demo.pk])
    response = client_logged_in.get(f"{url}?{RANGE}")

    assert response.status_code == 200
    ctx = response.context
    f = ctx["figures"]
    assert (f.fires, f.unique_contacts, f.unique_visitors, f.conversions, f.attributed) == (4, 3, 2, 4, 3)
    assert [(b["dimension"], [(r.label, r.fires) for r in b["rows"]]) for b in ctx["breakdowns"]][:2] == [
        ("source", [("Beacon", 3), ("API", 1)]),
        ("channel", [("(not set)", 1), ("Email marketing", 1), ("Organic search", 1), ("Paid search", 1)]),
    ]
    assert [(r.label, r.conversions, r.base) for r in ctx["attributed_pages"]] == [
        ("https://acme.test/pricing", 2, 4),
        ("https://acme.test/demo", 1, 1),
    ]
    assert ctx["metadata_keys"] == ["planTier", "seats", "trial"] and ctx["metadata_key"] == "planTier"
    assert [(r.value, r.fires) for r in ctx["metadata_rows"]] == [("enterprise", 3), ("pro", 1)]
    assert [r.pk for r in ctx["occurrences"]] == [history.records[n].pk for n in (4, 3, 2, 1)]
    body = response.content.decode()
    assert "50.00%" in body  # the pricing page's conversion rate
    assert "Globex" not in body and "globex-secret" not in body


def test_the_metadata_breakdown_offers_the_declared_properties_first(client_logged_in, history):
    from custom_events.services import custom_event_update

    schema = [{"name": "trial", "type": "boolean"}, {"name": "region", "type": "string"}]
    custom_event_update(custom_event=history.demo, metadata_schema=schema)
    url = reverse("reports:event", args=[history.demo.pk])

    ctx = client_logged_in.get(f"{url}?{RANGE}").context

    # then: declared first in the schema's order (region even before any event carries it), then the others
    assert ctx["metadata_keys"] == ["trial", "region", "planTier", "seats"] and ctx["metadata_key"] == "trial"


def test_event_report_metadata_key_filter_and_pages(client_logged_in, history, monkeypatch):
    url = reverse("reports:event", args=[history.demo.pk])
    response = client_logged_in.get(f"{url}?{RANGE}&key=seats&meta_key=planTier&meta_value=enterprise")
    assert response.context["metadata_key"] == "seats"
    assert [(r.value, r.fires) for r in response.context["metadata_rows"]] == [("12", 1)]
    assert [r.pk for r in response.context["occurrences"]] == [history.records[n].pk for n in (4, 3, 1)]

    # An unknown key shows the first one; a value without a key is refused with a message.
    response = client_logged_in.get(f"{url}?{RANGE}&key=nope&meta_value=enterprise")
    assert response.context["metadata_key"] == "planTier"
    assert "Choose the key to filter on." in response.content.decode()
    assert len(response.context["occurrences"]) == 4

    # Pages of occurrences continue after the last one shown.
    monkeypatch.setattr("automations.reports.selectors.OCCURRENCES_PAGE", 3)
    response = client_logged_in.get(f"{url}?{RANGE}")
    assert [r.pk for r in response.context["occurrences"]] == [history.records[n].pk for n in (4, 3, 2)]
    assert response.context["next_before"] == history.records[2].pk
    response = client_logged_in.get(f"{url}?{RANGE}&before={history.records[2].pk}")
    assert [r.pk for r in response.context["occurrences"]] == [history.records[1].pk]
    assert response.context["next_before"] is None


def test_event_csvs(client_logged_in, history):
    def rows(table, extra=""):
        url = reverse("reports:event_csv", args=[history.demo.pk, table])
        return get_csv(client_logged_in, f"{url}?{RANGE}{extra}")

    assert rows("daily") == [
        ["day", "fires", "conversions"],
        ["2026-03-06", "1", "1"],
        ["2026-03-07", "2", "2"],
        ["2026-03-08", "1", "1"],
    ]
    assert rows("source") == [
        ["source", "label", "fires", "conversions", "share_of_fires"],
        ["beacon", "Beacon", "3", "3", "0.7500"],
        ["api", "API", "1", "1", "0.2500"],
    ]
    assert rows("page") == [
        ["page", "label", "fires", "conversions", "share_of_fires"],
        ["https://acme.test/pricing", "https://acme.test/pricing", "2", "2", "0.5000"],
        ["", "(no page)", "1", "1", "0.2500"],
        ["https://acme.test/demo", "https://acme.test/demo", "1", "1", "0.2500"],
    ]
    assert rows("utm_campaign")[1:] == [
        ["", "(not set)", "2", "2", "0.5000"],
        ["brand", "brand", "1", "1", "0.2500"],
        ["march", "march", "1", "1", "0.2500"],
    ]
    assert rows("attributed-pages") == [
        ["page", "attributed_conversions", "page_views", "conversion_rate"],
        ["https://acme.test/pricing", "2", "4", "0.5000"],
        ["https://acme.test/demo", "1", "1", "1.0000"],
    ]
    assert rows("attributed-channels")[1:] == [
        ["DIRECT_TRAFFIC", "Direct traffic", "1", "0.3333"],
        ["ORGANIC_SEARCH", "Organic search", "1", "0.3333"],
        ["PAID_SEARCH", "Paid search", "1", "0.3333"],
    ]
    assert rows("metadata", "&key=planTier") == [
        ["key", "value", "fires", "conversions", "share_of_fires"],
        ["planTier", "enterprise", "3", "3", "0.7500"],
        ["planTier", "pro", "1", "1", "0.2500"],
    ]


def test_occurrences_csv_is_complete_and_safe_in_spreadsheets(client_logged_in, history):
    EventRecordFactory(
        account=history.account,
        custom_event=history.demo,
        contact=history.contacts["c2"],
        occurred_at=utc(2026, 3, 8, 15, 30),
        is_conversion=True,
        page_url='=HYPERLINK("https://evil.test","click")',
        utm_source="+cmd",
        metadata={"note": "@SUM(1,2)"},
    )
    url = reverse("reports:event_csv", args=[history.demo.pk, "occurrences"])
    rows = get_csv(client_logged_in, f"{url}?{RANGE}")

    assert rows[0][:6] == ["occurred_at", "contact_email", "contact_id", "visitor", "source", "page_url"]
    assert len(rows) == 1 + 5
    newest = rows[1]
    assert newest[0] == "2026-03-08T23:59:00-04:00"  # record 4, in the account's time zone
    assert newest[1:6] == ["", str(history.contacts["c3"].pk), "uid-v3", "beacon", "https://acme.test/pricing"]
    assert newest[-2:] == ['{"planTier": "enterprise", "trial": true}', "false"]
    injected = rows[2]
    assert injected[0] == "2026-03-08T11:30:00-04:00"
    assert injected[5] == '\'=HYPERLINK("https://evil.test","click")'
    assert injected[7] == "'+cmd"
    assert injected[-2] == '{"note": "@SUM(1,2)"}'
    filtered = get_csv(client_logged_in, f"{url}?{RANGE}&meta_key=planTier&meta_value=pro")
    assert [r[0] for r in filtered[1:]] == ["2026-03-07T00:00:00-05:00"]


def test_event_csv_errors(client_logged_in, history):
    url = reverse("reports:event_csv", args=[history.demo.pk, "metadata"])
    response = client_logged_in.get(f"{url}?{RANGE}")
    assert response.status_code == 400 and b"Choose the metadata key" in response.content
    assert client_logged_in.get(reverse("reports:event_csv", args=[history.demo.pk, "secrets"])).status_code == 404
    response = client_logged_in.get(f"{reverse('reports:event_csv', args=[history.demo.pk, 'daily'])}?start=x")
    assert response.status_code == 400 and b"Enter a valid date." in response.content
    response = client_logged_in.get(f"{url}?{RANGE}&key=" + "k" * 101)
    assert response.status_code == 400 and b"at most 100 characters" in response.content


def test_conversions_page_and_csvs(client_logged_in, history):
    response = client_logged_in.get(f"{reverse('reports:conversions')}?{RANGE}")

    assert response.status_code == 200
    s = response.context["summary"]
    assert (s.conversions, s.attributed, s.visits, s.page_views) == (5, 4, 6, 6)
    body = response.content.decode()
    assert "83.33%" in body  # 5 conversions in 6 visits
    assert "globex" not in body.lower()

    def rows(table):
        return get_csv(client_logged_in, f"{reverse('reports:conversions_csv', args=[table])}?{RANGE}")

    assert rows("daily") == [
        ["day", "conversions", "attributed_conversions"],
        ["2026-03-06", "1", "1"],
        ["2026-03-07", "2", "1"],
        ["2026-03-08", "2", "2"],
    ]
    assert rows("events") == [
        ["event", "slug", "fires", "conversions", "attributed_conversions"],
        ["Requested Demo", "requested-demo", "4", "4", "3"],
        ["Watched Video", "watched-video", "2", "1", "1"],
    ]
    assert rows("channels") == [
        ["channel", "label", "conversions", "visits", "conversion_rate"],
        ["", "(not set)", "1", "0", ""],
        ["EMAIL_MARKETING", "Email marketing", "1", "0", ""],
        ["ORGANIC_SEARCH", "Organic search", "1", "1", "1.0000"],
        ["PAID_SEARCH", "Paid search", "1", "3", "0.3333"],
        ["REFERRAL", "Referral", "1", "1", "1.0000"],
    ]
    assert rows("pages") == [
        ["page", "attributed_conversions", "page_views", "conversion_rate"],
        ["https://acme.test/pricing", "2", "4", "0.5000"],
        ["https://acme.test/demo", "1", "1", "1.0000"],
        ["https://acme.test/product", "1", "1", "1.0000"],
    ]
    assert client_logged_in.get(reverse("reports:conversions_csv", args=["nope"])).status_code == 404


def test_another_accounts_event_is_404_everywhere(client_logged_in, history):
    for url in (
        reverse("reports:event", args=[history.other_event.pk]),
        reverse("reports:event_csv", args=[history.other_event.pk, "daily"]),
        reverse("reports:event_csv", args=[history.other_event.pk, "occurrences"]),
    ):
        assert client_logged_in.get(url).status_code == 404


def test_the_other_account_sees_only_its_own(client, history):
    spy = UserFactory(username="spy@globex.test")
    MembershipFactory(user=spy, account=history.other)
    client.force_login(spy)

    response = client.get(f"{reverse('reports:overview')}?{RANGE}")
    assert [(r.event.slug, r.fires, r.unique_contacts) for r in response.context["rows"]] == [("requested-demo", 3, 1)]
    rows = get_csv(client, f"{reverse('reports:conversions_csv', args=['pages'])}?{RANGE}")
    # The same URL as Acme's pricing page: only Globex's own page view and conversions.
    assert rows[1:] == [["https://acme.test/pricing", "3", "1", "3.0000"]]
    assert client.get(reverse("reports:event", args=[history.demo.pk])).status_code == 404


def test_login_required(client, history):
    for url in (
        reverse("reports:overview"),
        reverse("reports:overview_csv"),
        reverse("reports:event", args=[history.demo.pk]),
        reverse("reports:event_csv", args=[history.demo.pk, "occurrences"]),
        reverse("reports:conversions"),
        reverse("reports:conversions_csv", args=["daily"]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_navigation_links(client_logged_in, history):
    body = client_logged_in.get(reverse("reports:conversions")).content.decode()
    assert f'href="{reverse("reports:overview")}"' in body
    assert f'href="{reverse("reports:conversions")}" aria-current="page"' in body


def test_empty_account(client_logged_in, account):
    body = client_logged_in.get(reverse("reports:overview")).content.decode()
    assert "No custom events yet" in body
    response = client_logged_in.get(reverse("reports:conversions"))
    assert response.status_code == 200 and "No conversions in this range." in response.content.decode()

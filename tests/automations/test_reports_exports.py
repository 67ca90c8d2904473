"""The occurrences CSV: exact content for values a spreadsheet or a CSV reader could get wrong, read in pages."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from automations.reports import selectors
from automations.reports.exports import OCCURRENCE_COLUMNS, csv_cell
from automations.reports.services import report_rollups_update
from custom_events.models import MarketingChannel
from tests.factories import (
    AccountFactory,
    ContactFactory,
    CustomEventFactory,
    EventRecordFactory,
    ImpressionFactory,
    SessionFactory,
    VisitorFactory,
)
from tracking.models import EventRecord

from .reports_fixtures import TZ, build_history, utc

pytestmark = pytest.mark.django_db

RANGE = "start=2026-03-06&end=2026-03-08"
HEADER = [
    "occurred_at",
    "contact_email",
    "contact_id",
    "visitor",
    "source",
    "page_url",
    "marketing_channel",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "is_conversion",
    "attributed_impression_id",
    "metadata",
    "metadata_dropped",
]


def download(client, event, query=RANGE) -> str:
    response = client.get(f"{reverse('reports:event_csv', args=[event.pk, 'occurrences'])}?{query}")
    assert response.status_code == 200, response.content
    assert (
        response["Content-Disposition"] == f'attachment; filename="{event.slug}-occurrences-2026-03-06-2026-03-08.csv"'
    )
    return b"".join(response.streaming_content).decode()


def csv_text(rows) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


@pytest.fixture
def tricky(account):
    """Three occurrences in range (two at the same instant, just after the clocks went forward), one the day after
    the range, one of another account."""
    account.time_zone = TZ
    account.save()
    event = CustomEventFactory(account=account, slug="signed-up", counts_as_conversion=True)
    formula = ContactFactory(account=account, email="+alias@acme.test")
    anonymous = ContactFactory(account=account, email=None)
    visitor = VisitorFactory(account=account, uid="=uid", contact=formula)
    session = SessionFactory(account=account, visitor=visitor)
    impression = ImpressionFactory(account=account, session=session, visitor=visitor)
    instant = utc(2026, 3, 8, 15, 30, 0, 123456)  # 11:30 EDT
    rows = {
        "beacon": EventRecordFactory(
            account=account,
            custom_event=event,
            contact=formula,
            visitor=visitor,
            source=EventRecord.Source.BEACON,
            occurred_at=instant,
            page_url='=HYPERLINK("https://evil.test","click")',
            marketing_channel=MarketingChannel.PAID_SEARCH,
            utm_source="-cmd",
            utm_medium="@SUM(1)",
            utm_campaign="\ttab",
            utm_term='comma, "quote"\nnew line',
            utm_content="Café 東京 🚀",
            is_conversion=True,
            metadata={"z": 1, "a": "é", "nested": {"b": [1, 2.5, None, True]}, "n": -1},
        ),
        "api": EventRecordFactory(
            account=account,
            custom_event=event,
            contact=anonymous,
            occurred_at=instant,
            is_conversion=False,
            metadata=None,
            metadata_dropped=True,
        ),
        "attributed": EventRecordFactory(
            account=account,
            custom_event=event,
            contact=formula,
            visitor=visitor,
            source=EventRecord.Source.BEACON,
            occurred_at=utc(2026, 3, 7, 4, 59),  # 6 March 23:59 EST
            attributed_impression=impression,
            page_url="https://acme.test/pricing?a=1&b=2",
            metadata={"note": "=cmd()", "plan": "pro"},
        ),
    }
    EventRecordFactory(account=account, custom_event=event, contact=anonymous, occurred_at=utc(2026, 3, 9, 5, 0))
    other = AccountFactory(slug="globex", time_zone=TZ)
    EventRecordFactory(
        account=other,
        custom_event=CustomEventFactory(account=other, slug="signed-up"),
        contact=ContactFactory(account=other),
        occurred_at=instant,
    )
    return event, rows, formula, anonymous


def test_occurrences_csv_exact_content(client_logged_in, tricky):
    event, rows, formula, anonymous = tricky

    text = download(client_logged_in, event)

    expected = [
        HEADER,
        [
            "2026-03-08T11:30:00.123456-04:00",
            "",
            str(anonymous.pk),
            "",
            "api",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "false",
            "",
            "",
            "true",
        ],
        [
            "2026-03-08T11:30:00.123456-04:00",
            "'+alias@acme.test",
            str(formula.pk),
            "'=uid",
            "beacon",
            '\'=HYPERLINK("https://evil.test","click")',
            "PAID_SEARCH",
            "'-cmd",
            "'@SUM(1)",
            "'\ttab",
            'comma, "quote"\nnew line',
            "Café 東京 🚀",
            "true",
            "",
            '{"a": "é", "n": -1, "nested": {"b": [1, 2.5, null, true]}, "z": 1}',
            "false",
        ],
        [
            "2026-03-06T23:59:00-05:00",
            "'+alias@acme.test",
            str(formula.pk),
            "'=uid",
            "beacon",
            "https://acme.test/pricing?a=1&b=2",
            "",
            "",
            "",
            "",
            "",
            "",
            "true",
            str(rows["attributed"].attributed_impression_id),
            '{"note": "=cmd()", "plan": "pro"}',
            "false",
        ],
    ]
    # The same instant: the higher id first, as the page shows them.
    assert rows["api"].pk > rows["beacon"].pk
    assert text == "\ufeff" + csv_text(expected)
    assert list(OCCURRENCE_COLUMNS) == HEADER


def test_occurrences_csv_is_read_in_pages(client_logged_in, tricky, monkeypatch):
    # given three more occurrences at one instant, so that pages end inside a run of equal times
    event, rows, formula, _anonymous = tricky
    for _ in range(3):
        EventRecordFactory(account=event.account, custom_event=event, contact=formula, occurred_at=utc(2026, 3, 7, 12))
    whole = download(client_logged_in, event)
    assert whole.count("\r\n") == 1 + 6  # the header and six occurrences (a newline inside a cell is "\n")

    # when the pages hold two rows
    monkeypatch.setattr(selectors, "EXPORT_PAGE", 2)
    with CaptureQueriesContext(connection) as captured:
        paged = download(client_logged_in, event)

    # then the content is the same, read by four statements of at most two rows (the last one finds none)
    assert paged == whole
    reads = [q["sql"] for q in captured.captured_queries if 'FROM "tracking_eventrecord"' in q["sql"]]
    assert len(reads) == 4
    assert all(q.rstrip().endswith("LIMIT 2") for q in reads)
    # no read joins the contact or the visitor tables in full: each page names the event's rows by the index range
    assert all('"tracking_eventrecord"."custom_event_id" = ' in q for q in reads)


def test_occurrences_csv_metadata_filter_across_pages(client_logged_in, tricky, monkeypatch):
    event, rows, formula, _anonymous = tricky
    for hour in range(3):
        EventRecordFactory(
            account=event.account,
            custom_event=event,
            contact=formula,
            occurred_at=utc(2026, 3, 7, 12 + hour),
            metadata={"plan": "pro"},
        )
    monkeypatch.setattr(selectors, "EXPORT_PAGE", 2)

    text = download(client_logged_in, event, f"{RANGE}&meta_key=plan&meta_value=pro")

    lines = list(csv.reader(io.StringIO(text[1:])))
    assert [line[0] for line in lines[1:]] == [
        "2026-03-07T09:00:00-05:00",
        "2026-03-07T08:00:00-05:00",
        "2026-03-07T07:00:00-05:00",
        "2026-03-06T23:59:00-05:00",
    ]


def test_occurrences_csv_matches_the_records_cell_by_cell(client_logged_in, account):
    """Each cell is csv_cell of the record's value, as the CSV was written from model instances: compared on the
    hand-counted history, whose rows the rollups hold or not."""
    account.time_zone = TZ
    account.save()
    history = build_history(account=account)
    report_rollups_update(now=timezone.now() + timedelta(minutes=2))
    tz = account.tzinfo
    records = EventRecord.objects.filter(
        custom_event=history.demo, occurred_at__gte=utc(2026, 3, 6, 5), occurred_at__lt=utc(2026, 3, 9, 4)
    ).order_by("-occurred_at", "-id")
    expected = [
        [
            csv_cell(value)
            for value in (
                r.occurred_at.astimezone(tz).isoformat(),
                r.contact.email or "",
                r.contact_id,
                r.visitor.uid if r.visitor else "",
                r.source,
                r.page_url,
                r.marketing_channel,
                r.utm_source,
                r.utm_medium,
                r.utm_campaign,
                r.utm_term,
                r.utm_content,
                r.is_conversion,
                r.attributed_impression_id,
                r.metadata,
                r.metadata_dropped,
            )
        ]
        for r in records
    ]
    assert len(expected) == 4

    text = download(client_logged_in, history.demo)

    assert text == "\ufeff" + csv_text([HEADER, *expected])

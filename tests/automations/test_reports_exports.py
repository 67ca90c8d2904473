"""The occurrences CSV: exact content for values a spreadsheet or a CSV reader could get wrong, read in pages."""

import csv
import io
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from automations.reports import exports, selectors
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


def expected_file(rows, formula, anonymous) -> str:
    """The file of the tricky occurrences, cell by cell."""
    return "\ufeff" + csv_text(
        [
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
    )


def test_occurrences_csv_exact_content(client_logged_in, tricky):
    event, rows, formula, anonymous = tricky

    text = download(client_logged_in, event)

    # The same instant: the higher id first, as the page shows them.
    assert rows["api"].pk > rows["beacon"].pk
    assert text == expected_file(rows, formula, anonymous)
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


def test_occurrences_csv_formats_a_repeated_value_once_per_export(client_logged_in, tricky, monkeypatch):
    # given pages of three occurrences: metadata "pro" three times, then "free" three times, then "pro" again
    event = CustomEventFactory(account=tricky[0].account, slug="upgraded")
    for hour in range(9):
        plan = "free" if 3 <= hour < 6 else "pro"
        EventRecordFactory(
            account=event.account, custom_event=event, occurred_at=utc(2026, 3, 7, hour), metadata={"plan": plan}
        )
    monkeypatch.setattr(selectors, "EXPORT_PAGE", 3)
    decoded = []
    loads = exports.json.loads
    monkeypatch.setattr(exports.json, "loads", lambda text, **kw: decoded.append(text) or loads(text, **kw))

    whole = download(client_logged_in, event)

    # then "pro" is decoded and formatted once for the export, not once per page
    assert decoded.count('{"plan": "pro"}') == 1

    # when a cache holds no more than one page's values
    monkeypatch.setattr(exports, "EXPORT_CACHE_BYTES", 1)
    decoded.clear()
    paged = download(client_logged_in, event)

    # then the file is the same, and "pro" is formatted again after "free" took its place
    assert paged == whole
    assert decoded.count('{"plan": "pro"}') == 2


def readers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("export-reader")]


@pytest.mark.django_db(transaction=True)
def test_occurrences_csv_read_ahead_gives_the_same_file(client_logged_in, tricky, monkeypatch):
    """Outside a transaction the pages are read on a thread of its own, one page ahead of the formatting."""
    event, rows, formula, anonymous = tricky
    monkeypatch.setattr(selectors, "EXPORT_PAGE", 1)
    read_on = set()
    columns = exports._columns

    def recorded(*args):
        for page in columns(*args):
            read_on.add(threading.current_thread())
            yield page

    monkeypatch.setattr(exports, "_columns", recorded)

    text = download(client_logged_in, event)

    assert text == expected_file(rows, formula, anonymous)
    assert read_on and threading.current_thread() not in read_on
    assert not readers()


@pytest.fixture
def closed(monkeypatch) -> list:
    """The connections closed (SQLite ignores closing its in-memory test database, so this records the calls)."""
    calls = []
    wrapper = type(connections["default"])
    close = wrapper.close
    monkeypatch.setattr(wrapper, "close", lambda self: calls.append(self) or close(self))
    return calls


class Pages:
    """Pages of one row, counting those read, each read on a connection of the reading thread."""

    def __init__(self, count=10, fail_at=None):
        self.count, self.fail_at, self.read, self.closed = count, fail_at, 0, False
        self.connections = []

    def __iter__(self):
        try:
            for number in range(self.count):
                if number == self.fail_at:
                    raise RuntimeError("the database went away")
                connection = connections["default"]
                connection.ensure_connection()
                self.connections.append(connection)
                self.read += 1
                yield [number]
        finally:
            self.closed = True


@pytest.mark.django_db(transaction=True)
def test_read_ahead_stops_when_the_response_is_closed_early(closed):
    pages = Pages()
    body = exports._read_ahead(iter(pages), "default")

    assert next(body) == [0]
    assert next(body) == [1]
    body.close()  # the client went away

    # then the reader read at most one page ahead, ended, and closed its connection
    assert pages.read <= 3
    assert pages.closed
    assert not readers()
    assert set(pages.connections) == set(closed)
    assert connections["default"] not in pages.connections


@pytest.mark.django_db(transaction=True)
def test_read_ahead_raises_the_readers_error(closed):
    pages = Pages(fail_at=2)
    body = exports._read_ahead(iter(pages), "default")

    assert list(body.__next__() for _ in range(2)) == [[0], [1]]
    with pytest.raises(RuntimeError, match="went away"):
        next(body)
    assert not readers()
    assert set(pages.connections) == set(closed)


def test_read_ahead_reads_in_the_callers_thread_inside_a_transaction():
    pages = Pages(count=3)

    assert list(exports._read_ahead(iter(pages), "default")) == [[0], [1], [2]]
    assert set(pages.connections) == {connections["default"]}

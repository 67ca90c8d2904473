"""A small, hand-countable history for the report tests, in a time zone with daylight saving time.

The account is in America/New_York; the report range is 6–8 March 2026 (local days). On 8 March 2026 the clocks
go forward, so local midnight is 05:00 UTC on 6, 7 and 8 March and 04:00 UTC on 9 March. Rows sit a minute either
side of those boundaries.

Expected figures for 6–8 March, counted by hand (see the tests):

    Requested Demo (a conversion):  records 1, 2, 3, 4 -> fires 4, conversions 4, attributed 3 (1, 2, 4);
                                    contacts c1, c2, c3 -> 3; visitors v1, v3 -> 2; daily fires 1, 2, 1
    Watched Video (not a conversion until its definition changed, between records 6 and 7):
                                    records 6, 7 -> fires 2, conversions 1, attributed 1;
                                    contacts c1, c4 -> 2; visitors v1, v4 -> 2; daily fires 1, 0, 1
    Outside the range: record 5 (9 March, 00:00 local), record 8 (5 March, 23:59 local).
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

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

START = date(2026, 3, 6)
END = date(2026, 3, 8)
DAYS = [date(2026, 3, 6), date(2026, 3, 7), date(2026, 3, 8)]
TZ = "America/New_York"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@dataclass
class History:
    account: object
    demo: object
    video: object
    contacts: dict = field(default_factory=dict)
    visitors: dict = field(default_factory=dict)
    sessions: dict = field(default_factory=dict)
    impressions: dict = field(default_factory=dict)
    records: dict = field(default_factory=dict)


def build_history(account=None, *, midway=None) -> History:
    """The history above. `midway` is called after record 3, so that a test can roll up part of it."""
    account = account or AccountFactory(name="Acme", slug="acme", time_zone=TZ, domains=["acme.test"])
    demo = CustomEventFactory(account=account, name="Requested Demo", slug="requested-demo", counts_as_conversion=True)
    video = CustomEventFactory(account=account, name="Watched Video", slug="watched-video", counts_as_conversion=False)
    h = History(account=account, demo=demo, video=video)

    h.contacts["c1"] = ContactFactory(account=account, email="c1@acme.test")
    h.contacts["c2"] = ContactFactory(account=account, email="c2@acme.test")
    h.contacts["c3"] = ContactFactory(account=account, email=None)
    h.contacts["c4"] = ContactFactory(account=account, email="c4@acme.test")
    for name, contact in (("v1", "c1"), ("v3", "c3"), ("v4", "c4"), ("v5", "c1"), ("v6", "c1")):
        h.visitors[name] = VisitorFactory(account=account, uid=f"uid-{name}", contact=h.contacts[contact])

    def visit(name, visitor, started, channel):
        h.sessions[name] = SessionFactory(
            account=account, visitor=h.visitors[visitor], started_at=started, last_seen_at=started, channel=channel
        )

    visit("s1", "v1", utc(2026, 3, 6, 20, 0), MarketingChannel.PAID_SEARCH)  # Mar 6 local
    visit("s2", "v1", utc(2026, 3, 7, 4, 57), MarketingChannel.ORGANIC_SEARCH)  # Mar 6 23:57 local
    visit("s3", "v3", utc(2026, 3, 9, 3, 40), MarketingChannel.DIRECT_TRAFFIC)  # Mar 8 23:40 local (EDT)
    visit("s4", "v4", utc(2026, 3, 8, 11, 0), MarketingChannel.REFERRAL)  # Mar 8
    visit("s5", "v5", utc(2026, 3, 7, 15, 0), MarketingChannel.PAID_SEARCH)  # Mar 7
    visit("s7", "v4", utc(2026, 3, 9, 4, 0), MarketingChannel.REFERRAL)  # Mar 9 00:00 local: outside

    def page_view(name, session, url, at):
        s = h.sessions[session]
        h.impressions[name] = ImpressionFactory(
            account=account, session=s, visitor=s.visitor, url=url, channel=s.channel, occurred_at=at
        )

    page_view("imp1", "s1", "https://acme.test/pricing?utm_source=google&x=1", utc(2026, 3, 7, 4, 50))  # Mar 6
    page_view("imp2", "s2", "https://acme.test/demo", utc(2026, 3, 7, 4, 58))  # Mar 6 23:58
    page_view("imp3", "s3", "https://acme.test/pricing", utc(2026, 3, 9, 3, 50))  # Mar 8 (EDT)
    page_view("imp4", "s4", "https://acme.test/product?utm_campaign=spring", utc(2026, 3, 8, 11, 30))  # Mar 8
    page_view("imp5", "s5", "https://acme.test/pricing#plans", utc(2026, 3, 7, 15, 0))  # Mar 7
    page_view("imp7", "s7", "https://acme.test/product", utc(2026, 3, 9, 4, 0))  # Mar 9: outside

    def record(n, event, contact, at, *, visitor=None, session=None, conversion, impression=None, **fields):
        h.records[n] = EventRecordFactory(
            account=account,
            custom_event=event,
            contact=h.contacts[contact],
            visitor=h.visitors[visitor] if visitor else None,
            session=h.sessions[session] if session else None,
            source=EventRecord.Source.BEACON if visitor else EventRecord.Source.API,
            occurred_at=at,
            is_conversion=conversion,
            attributed_impression=h.impressions[impression] if impression else None,
            **fields,
        )

    record(
        1,
        demo,
        "c1",
        utc(2026, 3, 7, 4, 59),  # Mar 6 23:59 local
        visitor="v1",
        session="s1",
        conversion=True,
        impression="imp1",
        marketing_channel=MarketingChannel.PAID_SEARCH,
        utm_source="google",
        utm_medium="cpc",
        utm_campaign="brand",
        page_url="https://acme.test/pricing?utm_source=google",
        metadata={"planTier": "enterprise"},
    )
    record(
        2,
        demo,
        "c1",
        utc(2026, 3, 7, 5, 0),  # Mar 7 00:00 local
        visitor="v1",
        session="s2",
        conversion=True,
        impression="imp2",
        marketing_channel=MarketingChannel.ORGANIC_SEARCH,
        page_url="https://acme.test/demo#form",
        metadata={"planTier": "pro", "seats": 12},
    )
    record(
        3,
        demo,
        "c2",
        utc(2026, 3, 8, 4, 59),  # Mar 7 23:59 local (EST)
        conversion=True,
        marketing_channel=MarketingChannel.EMAIL_MARKETING,
        utm_source="newsletter",
        utm_medium="email",
        utm_campaign="march",
        metadata={"planTier": "enterprise"},
    )
    if midway is not None:
        midway(h)
    # Created after `midway`: a visit and a page view, and the rest of the records.
    visit("s6", "v6", utc(2026, 3, 7, 16, 0), MarketingChannel.PAID_SEARCH)  # Mar 7
    page_view("imp6", "s6", "https://acme.test/pricing", utc(2026, 3, 7, 16, 0))  # Mar 7
    record(
        4,
        demo,
        "c3",
        utc(2026, 3, 9, 3, 59),  # Mar 8 23:59 local (EDT)
        visitor="v3",
        session="s3",
        conversion=True,
        impression="imp3",
        page_url="https://acme.test/pricing",
        metadata={"planTier": "enterprise", "trial": True},
    )
    record(
        5,
        demo,
        "c3",
        utc(2026, 3, 9, 4, 0),  # Mar 9 00:00 local: outside
        visitor="v3",
        session="s3",
        conversion=True,
        impression="imp3",
        page_url="https://acme.test/pricing",
        metadata={"planTier": "starter"},
    )
    record(
        6,
        video,
        "c1",
        utc(2026, 3, 6, 5, 0),  # Mar 6 00:00 local
        visitor="v1",
        session="s1",
        conversion=False,
        marketing_channel=MarketingChannel.PAID_SEARCH,
        page_url="https://acme.test/product",
        metadata={"videoTitle": "Product Overview"},
    )
    # The definition now counts as a conversion; only occurrences after the change carry the flag.
    video.counts_as_conversion = True
    video.save()
    record(
        7,
        video,
        "c4",
        utc(2026, 3, 8, 12, 0),  # Mar 8
        visitor="v4",
        session="s4",
        conversion=True,
        impression="imp4",
        marketing_channel=MarketingChannel.REFERRAL,
        page_url="https://acme.test/product?utm_campaign=spring",
        metadata={"videoTitle": "Product Overview"},
    )
    record(
        8,
        video,
        "c1",
        utc(2026, 3, 6, 4, 59),  # Mar 5 23:59 local: outside
        visitor="v1",
        session="s1",
        conversion=False,
        page_url="https://acme.test/product",
    )
    return h


def build_other_account_history():
    """Another account with the same slugs, pages and days: none of it may show up in Acme's reports."""
    other = AccountFactory(name="Globex", slug="globex", time_zone=TZ, domains=["globex.test"])
    event = CustomEventFactory(account=other, name="Requested Demo", slug="requested-demo", counts_as_conversion=True)
    contact = ContactFactory(account=other, email="spy@globex.test")
    visitor = VisitorFactory(account=other, uid="uid-globex", contact=contact)
    session = SessionFactory(
        account=other, visitor=visitor, started_at=utc(2026, 3, 7, 12), channel=MarketingChannel.PAID_SEARCH
    )
    impression = ImpressionFactory(
        account=other,
        session=session,
        visitor=visitor,
        url="https://acme.test/pricing",
        occurred_at=utc(2026, 3, 7, 12),
    )
    for i in range(3):
        EventRecordFactory(
            account=other,
            custom_event=event,
            contact=contact,
            visitor=visitor,
            session=session,
            source=EventRecord.Source.BEACON,
            occurred_at=utc(2026, 3, 7, 12, i),
            is_conversion=True,
            attributed_impression=impression,
            marketing_channel=MarketingChannel.PAID_SEARCH,
            page_url="https://acme.test/pricing",
            metadata={"planTier": "globex-secret"},
        )
    return other, event

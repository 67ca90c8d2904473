"""The one-statement hit paths (tracking/sql.py, PostgreSQL) write exactly what the general path writes.

One scenario of beacon hits (new visitors, page views and events in an open visit, conversions, a campaign change,
a visit timing out, retries, a reused hit id, an event with actions, metadata over the limit) is recorded twice,
into two accounts: once with TRACKING_ONE_STATEMENT_HITS on, once with it off. Every row both write is compared.
"""

from datetime import UTC, datetime, timedelta

import pytest

from automations.models import ActionRun
from tests.automations.services import require_services
from tests.factories import AccountFactory, ActionFactory, CustomEventFactory
from tracking import services, sql
from tracking.hits import Hit
from tracking.models import Contact, EventRecord, Impression, RejectedHit, Session, Visitor

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
CAMPAIGN = "?utm_source=newsletter&utm_medium=email&utm_campaign=spring"


def scenario() -> list[tuple[timedelta, Hit]]:
    def imp(n, visitor, url, **extra):
        return Hit(type="impression", id=f"imp-{n:07d}", visitor=visitor, url=url, title=f"Page {n}", **extra)

    def evt(n, visitor, slug, **extra):
        return Hit(
            type="event", id=f"evt-{n:07d}", visitor=visitor, url="https://acme.test/pricing", slug=slug, **extra
        )

    s = timedelta(seconds=1)
    return [
        (0 * s, imp(1, "visitor-aaaa", "https://acme.test/" + CAMPAIGN, referrer="https://mail.google.com/")),
        (20 * s, imp(2, "visitor-aaaa", "https://acme.test/pricing")),  # open visit, activity not moved (< 1 min)
        (30 * s, evt(3, "visitor-aaaa", "requested-demo", metadata={"plan": "pro", "seats": 12})),  # conversion
        (30 * s, evt(3, "visitor-aaaa", "requested-demo", retry=True)),  # a retry: duplicate, changes nothing
        (95 * s, evt(4, "visitor-aaaa", "watched-video", metadata={})),  # moves the visit's last activity
        (96 * s, imp(2, "visitor-bbbb", "https://acme.test/")),  # a reused hit id from a new visitor
        (100 * s, evt(5, "visitor-bbbb", "requested-demo")),  # a new visitor's first hit is a conversion
        (110 * s, imp(6, "visitor-aaaa", "https://acme.test/?utm_source=ads&utm_campaign=autumn")),  # new campaign
        (120 * s, evt(7, "visitor-aaaa", "requested-demo", metadata={"x": "y" * 5000})),  # metadata dropped
        (130 * s, evt(8, "visitor-aaaa", "signed-up")),  # an event with actions
        (140 * s, imp(9, "visitor-aaaa", "https://acme.test/docs" + CAMPAIGN)),  # back to the first campaign
        (150 * s, imp(10, "visitor-aaaa", "https://acme.test/docs")),
        (160 * s, evt(11, "visitor-aaaa", "requested-demo")),
        (3000 * s, evt(12, "visitor-aaaa", "requested-demo")),  # after the inactivity timeout: a new visit
        (3010 * s, imp(13, "visitor-cccc", "https://acme.test/", referrer="https://www.google.com/search")),
        (3020 * s, imp(13, "visitor-cccc", "https://acme.test/", retry=True)),
    ]


def record_scenario(account) -> list[str]:
    CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)
    CustomEventFactory(account=account, slug="watched-video")
    signed_up = CustomEventFactory(account=account, slug="signed-up")
    ActionFactory(custom_event=signed_up, kind="add_tag", config={"tag": "customer"})
    return [services.hit_record(account=account, hit=hit, now=T0 + offset).status for offset, hit in scenario()]


def snapshot(account) -> dict:
    """Everything the hits wrote, with database ids replaced by stable references."""
    visits = {s.pk: i for i, s in enumerate(Session.objects.filter(account=account).order_by("started_at", "pk"))}
    contacts = {c.pk: i for i, c in enumerate(Contact.objects.filter(account=account).order_by("created_at", "pk"))}
    utm = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
    return {
        "contacts": [(c.email, c.score, c.fields) for c in Contact.objects.filter(account=account).order_by("pk")],
        "visitors": sorted(
            (v.uid, contacts[v.contact_id], v.last_seen_at, visits.get(v.current_session_id))
            for v in Visitor.objects.filter(account=account)
        ),
        "visits": [
            (
                s.visitor.uid,
                s.started_at,
                s.last_seen_at,
                s.landing_url,
                s.referrer,
                s.channel,
                *(getattr(s, f) for f in utm),
            )
            for s in Session.objects.filter(account=account).order_by("started_at", "pk")
        ],
        "impressions": [
            (visits[i.session_id], i.visitor.uid, i.url, i.title, i.referrer, i.channel, i.occurred_at, i.client_id)
            + tuple(getattr(i, f) for f in utm)
            for i in Impression.objects.filter(account=account).order_by("occurred_at", "pk")
        ],
        "events": [
            (
                e.custom_event.slug,
                contacts[e.contact_id],
                e.visitor.uid,
                visits[e.session_id],
                e.source,
                e.occurred_at,
                e.page_url,
                e.marketing_channel,
                e.marketing_source_id,
                e.marketing_source_name,
                e.metadata,
                e.metadata_dropped,
                e.metadata_bytes,
                e.is_conversion,
                e.attributed_impression.client_id if e.attributed_impression else None,
                e.idempotency_key,
            )
            + tuple(getattr(e, f) for f in utm)
            for e in EventRecord.objects.filter(account=account).order_by("occurred_at", "pk")
        ],
        "debugger": [
            (r.reason, r.slug, r.recorded) for r in RejectedHit.objects.filter(account=account).order_by("pk")
        ],
        "runs": [
            (r.action.kind, r.event_record.idempotency_key, r.status) for r in ActionRun.objects.filter(account=account)
        ],
    }


def test_one_statement_paths_write_what_the_general_path_writes(settings, monkeypatch):
    require_services(postgresql=True)
    used = []
    statement = sql.hit_statement

    def spy(path, kind, params):
        applied, row_id = statement(path, kind, params)
        used.append((path, kind, applied, row_id is not None))
        return applied, row_id

    monkeypatch.setattr(sql, "hit_statement", spy)
    fast, general = AccountFactory(slug="fast"), AccountFactory(slug="general")

    settings.TRACKING_ONE_STATEMENT_HITS = True
    fast_outcomes = record_scenario(fast)
    settings.TRACKING_ONE_STATEMENT_HITS = False
    general_outcomes = record_scenario(general)

    assert fast_outcomes == general_outcomes
    assert fast_outcomes.count("duplicate") == 3
    expected, got = snapshot(general), snapshot(fast)
    for table in expected:
        assert got[table] == expected[table], table
    # The scenario went through both statements, for both kinds of hit, and took the general path where it must.
    applied = {(path, kind) for path, kind, ok, _ in used if ok}
    assert applied == {("open-visit", "impression"), ("open-visit", "event"), ("new-visitor", "impression"),
                       ("new-visitor", "event")}  # fmt: skip
    # Of 16 hits, 6 take the general path: the reused hit id, two campaign changes, the dropped metadata, the event
    # with actions, the timeout.
    assert len([u for u in used if u[2]]) == 10
    assert [(kind, key) for kind, key, _ in expected["runs"]] == [("add_tag", "beacon:evt-0000008")]
    # Conversions: in the first visit after the second page view, none for the new visitor, none in the visit
    # started by an event (the timeout), the latest page view otherwise.
    attributed = {e[-6]: e[14] for e in expected["events"] if e[0] == "requested-demo"}
    assert attributed == {
        "beacon:evt-0000003": "imp-0000002",
        "beacon:evt-0000005": None,
        "beacon:evt-0000007": "imp-0000006",
        "beacon:evt-0000011": "imp-0000010",
        "beacon:evt-0000012": None,
    }


def test_a_repeated_hit_id_from_a_new_visitor_writes_no_visitor(account, settings):
    require_services(postgresql=True)
    settings.TRACKING_ONE_STATEMENT_HITS = True
    CustomEventFactory(account=account, slug="requested-demo")
    first = Hit(type="event", id="evt-0000001", visitor="visitor-aaaa", url="https://acme.test/", slug="requested-demo")
    again = Hit(type="event", id="evt-0000001", visitor="visitor-bbbb", url="https://acme.test/", slug="requested-demo")

    assert services.hit_record(account=account, hit=first, now=T0).status == "recorded"
    assert services.hit_record(account=account, hit=again, now=T0).status == "duplicate"

    assert list(Visitor.objects.values_list("uid", flat=True)) == ["visitor-aaaa"]
    assert Contact.objects.count() == Session.objects.count() == EventRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_database_dropped_is_replaced_once(client):
    """A PostgreSQL restart drops every connection: the next hit reconnects instead of failing (the one-statement
    paths skip Django's per-request health check)."""
    import json

    import psycopg
    from django.db import connection

    from tracking.cache import account_get_by_site_key

    require_services(postgresql=True)
    account = AccountFactory(domains=["acme.test"])
    account_get_by_site_key(site_key=account.site_key)  # cached: the hit's first query is its statement
    connection.ensure_connection()
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or None, port=settings["PORT"] or None, user=settings["USER"], dbname=settings["NAME"]
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    page = {"type": "impression", "id": "imp-0000001", "visitor": "visitor-0001", "url": "https://acme.test/"}

    response = client.post(
        f"/collect/{account.site_key}",
        data=json.dumps(page),
        content_type="text/plain;charset=UTF-8",
        headers={"Origin": "https://acme.test"},
    )

    assert response.status_code == 200 and response.json()["status"] == "recorded"
    assert Impression.objects.filter(client_id="imp-0000001").count() == 1


def test_the_hit_statements_are_prepared_on_the_server_and_django_queries_are_not(account, settings):
    """Django turns psycopg's prepared statements off (prepare_threshold None), and then even prepare=True is
    ignored: the hit statements lift the threshold while they run, and put it back."""
    from django.db import connection

    require_services(postgresql=True)
    settings.TRACKING_ONE_STATEMENT_HITS = True
    for n in range(3):
        page = Hit(type="impression", id=f"imp-{n:07d}", visitor="visitor-aaaa", url="https://acme.test/")
        assert services.hit_record(account=account, hit=page, now=T0 + timedelta(seconds=n)).status == "recorded"
    for _ in range(10):
        list(Visitor.objects.filter(account=account).values_list("uid", flat=True))

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        prepared = [row[0] for row in cursor.fetchall()]

    assert any(statement.startswith("WITH v AS") for statement in prepared), prepared  # the open-visit path
    assert any(statement.startswith("WITH ids AS") for statement in prepared), prepared  # the new-visitor path
    assert not any('"uid"' in statement and statement.startswith("SELECT") for statement in prepared), prepared
    assert connection.connection.prepare_threshold is None  # Django's queries are neither prepared nor counted

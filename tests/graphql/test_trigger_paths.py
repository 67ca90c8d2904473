"""The one-statement path of triggerCustomEvent (custom_events/sql.py, PostgreSQL) writes exactly what the general
path writes.

One scenario of calls (contacts found and created, marketing sources matched and unknown, explicit channels,
metadata, every UTM field, a conversion, an event with actions, an unknown slug) is fired twice, into two accounts:
once with API_ONE_STATEMENT_TRIGGERS on, once with it off. Every row both write is compared.
"""

import json
from datetime import UTC, datetime

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from automations.models import ActionRun
from custom_events import services
from custom_events import sql as trigger_sql
from paminga.services import api_key_create
from tests.automations.services import require_services
from tests.factories import (
    AccountFactory,
    ActionFactory,
    ContactFactory,
    CustomEventFactory,
    MarketingSourceFactory,
)
from tests.graphql.utils import event_record_row
from tracking.models import UTM_FIELDS, Contact, EventRecord

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
TRIGGER = "mutation($input: TriggerCustomEventInput!) { triggerCustomEvent(input: $input) }"
ALL_UTM = {name: f"{name}-value" for name in UTM_FIELDS}

SCENARIO = [
    # A new contact, every field.
    {"slug": "requested-demo", "email": "Ada@Example.com", "page_url": "myapp://pricing", **ALL_UTM,
     "marketing_channel": "PAID_SEARCH", "metadata": {"plan": "pro", "seats": 12, "tags": ["a", "b"], "x": None}},
    # The same contact, found whatever the case; a source matched ignoring case gives its channel.
    {"slug": "watched-video", "email": "ada@example.COM", "marketing_source": "  PARTNER newsletter "},
    # An explicit channel wins over the matched source's.
    {"slug": "watched-video", "email": "ada@example.com", "marketing_source": "partner newsletter",
     "marketing_channel": "AFFILIATE"},
    # A source that matches none is kept as sent, with no channel from a source.
    {"slug": "watched-video", "email": "grace@example.com", "marketing_source": "Unknown Fair", "metadata": {}},
    # A contact that existed before.
    {"slug": "requested-demo", "email": "known@example.com", "utm_campaign": "spring"},
    # An event with actions: the general path, with its runs.
    {"slug": "signed-up", "email": "linus@example.com", "marketing_source": "Partner Newsletter"},
    # Unknown slug: refused by both.
    {"slug": "no-such-event", "email": "ada@example.com"},
]  # fmt: skip


def fire_scenario(client, account) -> list:
    CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)
    CustomEventFactory(account=account, slug="watched-video")
    signed_up = CustomEventFactory(account=account, slug="signed-up")
    ActionFactory(custom_event=signed_up, kind="add_tag", config={"tag": "customer"})
    MarketingSourceFactory(account=account, name="Partner Newsletter", channel="EMAIL_MARKETING")
    MarketingSourceFactory(account=account, name="Other", channel="REFERRAL")
    ContactFactory(account=account, email="known@example.com")
    secret = api_key_create(account=account, name="k")[1]
    answers = []
    for fields in SCENARIO:
        response = client.post(
            "/graphql/",
            json.dumps({"query": TRIGGER, "variables": {"input": fields}}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        answer = response.json()
        answers.append((answer.get("data"), [e["extensions"] for e in answer.get("errors", [])]))
    return answers


def snapshot(account) -> dict:
    return {
        "contacts": [
            (c.email, c.score, c.fields, c.created_at, c.identified_at)
            for c in Contact.objects.filter(account=account).order_by("pk")
        ],
        "events": [event_record_row(e) for e in EventRecord.objects.filter(account=account).order_by("pk")],
        "runs": [
            (r.action.kind, r.event_record.contact.email, r.status) for r in ActionRun.objects.filter(account=account)
        ],
    }


def test_the_one_statement_path_writes_what_the_general_path_writes(client, settings, monkeypatch):
    require_services(postgresql=True)
    monkeypatch.setattr(timezone, "now", lambda: T0)  # both paths stamp rows with the same clock
    used = []
    statement = trigger_sql.trigger_statement

    def spy(params):
        written = statement(params)
        used.append(written is not None)
        return written

    monkeypatch.setattr(trigger_sql, "trigger_statement", spy)
    fast, general = AccountFactory(slug="fast"), AccountFactory(slug="general")

    settings.API_ONE_STATEMENT_TRIGGERS = True
    fast_answers = fire_scenario(client, fast)
    settings.API_ONE_STATEMENT_TRIGGERS = False
    general_answers = fire_scenario(client, general)

    assert fast_answers == general_answers
    assert [data for data, _ in fast_answers] == [{"triggerCustomEvent": True}] * 6 + [None]
    assert fast_answers[-1][1] == [{"code": "UNKNOWN_EVENT", "field": "slug"}]
    expected, got = snapshot(general), snapshot(fast)
    for table in expected:
        assert got[table] == expected[table], table
    # Five calls took the statement; the event with actions tried it and wrote nothing; the unknown slug never did.
    assert used == [True] * 5 + [False]
    assert expected["runs"] == [("add_tag", "linus@example.com", "pending")]  # enqueued on commit
    events = expected["events"]
    assert [e[8:11] for e in events] == [
        ("PAID_SEARCH", None, ""),
        ("EMAIL_MARKETING", "Partner Newsletter", "PARTNER newsletter"),
        ("AFFILIATE", "Partner Newsletter", "partner newsletter"),
        ("", None, "Unknown Fair"),
        ("", None, ""),
        ("EMAIL_MARKETING", "Partner Newsletter", "Partner Newsletter"),
    ]
    assert [c[0] for c in expected["contacts"]] == [
        "known@example.com",
        "ada@example.com",
        "grace@example.com",
        "linus@example.com",
    ]


def test_the_statement_is_off_on_request_and_for_visitor_ids_and_idempotency_keys(account, settings, monkeypatch):
    require_services(postgresql=True)
    CustomEventFactory(account=account, slug="requested-demo")
    calls = []
    monkeypatch.setattr(trigger_sql, "trigger_statement", lambda params: calls.append(params))

    def fire(**extra):
        request = services.custom_event_trigger_clean(slug="requested-demo", email="ada@example.com", **extra)
        return services.custom_event_trigger(account=account, request=request)

    settings.API_ONE_STATEMENT_TRIGGERS = True
    fire(visitor_id="visitor-aaaa")
    fire(idempotency_key="signup-1")
    settings.API_ONE_STATEMENT_TRIGGERS = False
    fire()

    assert calls == []
    assert EventRecord.objects.filter(account=account).count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_definition_deleted_behind_a_cached_copy_is_unknown_and_nothing_is_recorded(client, settings):
    require_services(postgresql=True)
    settings.API_ONE_STATEMENT_TRIGGERS = True
    account = AccountFactory()
    event = CustomEventFactory(account=account, slug="requested-demo")
    secret = api_key_create(account=account, name="k")[1]

    def fire():
        body = {"query": TRIGGER, "variables": {"input": {"slug": "requested-demo", "email": "ada@example.com"}}}
        return client.post(
            "/graphql/", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
        ).json()

    assert fire() == {"data": {"triggerCustomEvent": True}}  # the definition is now cached in this process
    type(event).objects.filter(pk=event.pk).delete()  # not through the service: the cached copy stays

    answer = fire()

    assert answer["errors"][0]["extensions"] == {"code": "UNKNOWN_EVENT", "field": "slug"}
    assert EventRecord.objects.count() == 0  # the first one went with its definition


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_database_dropped_is_replaced_once(client, settings):
    """The statement skips Django's per-request health check: a connection the database dropped between requests
    is replaced, and the event recorded once."""
    import psycopg

    require_services(postgresql=True)
    settings.API_ONE_STATEMENT_TRIGGERS = True
    account = AccountFactory()
    CustomEventFactory(account=account, slug="requested-demo")
    secret = api_key_create(account=account, name="k")[1]
    body = json.dumps({"query": TRIGGER, "variables": {"input": {"slug": "requested-demo", "email": "a@b.co"}}})

    def fire():
        return client.post(
            "/graphql/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
        ).json()

    assert fire() == {"data": {"triggerCustomEvent": True}}  # key and definition now remembered: no other query
    connection.ensure_connection()
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"] or None, port=db["PORT"] or None, user=db["USER"], dbname=db["NAME"]) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    # What the request handler does when a request starts (Django's test client leaves it out): a kept connection is
    # health-checked again in the new request.
    close_old_connections()

    assert fire() == {"data": {"triggerCustomEvent": True}}
    assert EventRecord.objects.count() == 2


def test_the_statement_is_prepared_on_the_server(account, settings):
    require_services(postgresql=True)
    settings.API_ONE_STATEMENT_TRIGGERS = True
    CustomEventFactory(account=account, slug="requested-demo")
    for n in range(3):
        request = services.custom_event_trigger_clean(slug="requested-demo", email=f"c{n}@example.com")
        services.custom_event_trigger(account=account, request=request)

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        prepared = [row[0] for row in cursor.fetchall()]

    assert any(statement.startswith("WITH ok AS") for statement in prepared), prepared
    assert EventRecord.objects.filter(account=account).count() == 3


def test_the_statement_returns_the_record_it_wrote(account, settings):
    require_services(postgresql=True)
    settings.API_ONE_STATEMENT_TRIGGERS = True
    event = CustomEventFactory(account=account, slug="requested-demo")
    source = MarketingSourceFactory(account=account, name="Partner", channel="REFERRAL")
    request = services.custom_event_trigger_clean(
        slug="requested-demo", email="ada@example.com", marketing_source="partner", metadata={"a": 1}
    )

    record, created = services.custom_event_trigger(account=account, request=request)

    stored = EventRecord.objects.get()
    assert created and not record._state.adding
    fields = [f.attname for f in EventRecord._meta.concrete_fields]
    assert [getattr(record, name) for name in fields] == [getattr(stored, name) for name in fields]
    assert (record.custom_event, record.contact.email, record.marketing_source) == (event, "ada@example.com", source)

"""triggerCustomEvents' bulk path (custom_event_trigger_many(bulk=True)) writes exactly what the one-by-one path
(bulk=False, the reference) writes.

One mixed batch (new, repeated and existing contacts, marketing sources matched and unknown, explicit channels,
metadata, every UTM field, a conversion, an event with actions, an unknown slug, an invalid input, idempotency keys
and visitor ids sharing emails with the others) is fired twice, into two accounts, once by each path. Every row
both write is compared, by content (the paths may give rows other ids).
"""

import json
import re
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from automations.models import ActionRun
from custom_events import services
from tests.factories import AccountFactory, ActionFactory, ContactFactory, CustomEventFactory, MarketingSourceFactory
from tests.graphql.utils import event_record_row
from tracking.models import UTM_FIELDS, Contact, EventRecord, Visitor

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
ALL_UTM = {name: f"{name}-value" for name in UTM_FIELDS}

BATCH = [
    {"slug": "requested-demo", "email": "Ada@Example.com", "page_url": "https://acme.test/pricing", **ALL_UTM,
     "marketing_channel": "PAID_SEARCH", "metadata": {"plan": "pro", "seats": 12}},
    {"slug": "watched-video", "email": "ada@example.com", "marketing_source": "partner NEWSLETTER"},
    {"slug": "watched-video", "email": "grace@example.com", "marketing_source": "Partner Newsletter",
     "marketing_channel": "AFFILIATE"},
    {"slug": "watched-video", "email": "known@example.com", "marketing_source": "Unknown Fair", "metadata": {}},
    {"slug": "signed-up", "email": "linus@example.com", "metadata": {"plan": "pro"}},
    {"slug": "signed-up", "email": "grace@example.com", "metadata": {"plan": "free"}},
    {"slug": "no-such-event", "email": "ada@example.com"},
    {"slug": "watched-video", "email": "not an email"},
    # One by one: a key whose contact the others also name, the same key again, a visitor whose email a request
    # before it names, and a new visitor.
    {"slug": "requested-demo", "email": "margaret@example.com", "idempotency_key": "order-1"},
    {"slug": "watched-video", "email": "margaret@example.com"},
    {"slug": "requested-demo", "email": "margaret@example.com", "idempotency_key": "order-1"},
    {"slug": "watched-video", "email": "barbara@example.com", "utm_source": "ads"},
    {"slug": "signed-up", "email": "barbara@example.com", "visitor_id": "visitor-bbbb"},
    {"slug": "watched-video", "email": "edsger@example.com", "visitor_id": "visitor-eeee"},
]  # fmt: skip


def clean(fields):
    try:
        return services.custom_event_trigger_clean(**fields)
    except ValidationError as exc:
        return exc


def fire(account, *, bulk: bool) -> list:
    CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)
    CustomEventFactory(account=account, slug="watched-video")
    signed_up = CustomEventFactory(account=account, slug="signed-up")
    ActionFactory(custom_event=signed_up, kind="add_tag", config={"tag": "customer"}, position=0)
    ActionFactory(
        custom_event=signed_up,
        kind="change_score",
        config={"delta": 5},
        condition={"key": "plan", "op": "equals", "value": "pro"},
        position=1,
    )
    MarketingSourceFactory(account=account, name="Partner Newsletter", channel="EMAIL_MARKETING")
    ContactFactory(account=account, email="known@example.com")
    results = services.custom_event_trigger_many(account=account, requests=[clean(f) for f in BATCH], bulk=bulk)
    return [
        (r.error_dict and next(iter(r.error_dict)), r.messages) if isinstance(r, ValidationError) else r[1]
        for r in results
    ]


def snapshot(account) -> dict:
    return {
        "contacts": sorted(
            (c.email or "", c.score, json.dumps(c.fields), c.created_at, c.identified_at)
            for c in Contact.objects.filter(account=account)
        ),
        "visitors": sorted((v.uid, v.contact.email) for v in Visitor.objects.filter(account=account)),
        "events": sorted((event_record_row(e) for e in EventRecord.objects.filter(account=account)), key=repr),
        "runs": sorted(
            (r.action.kind, r.event_record.contact.email, json.dumps(r.event_record.metadata), r.status, r.result)
            for r in ActionRun.objects.filter(account=account)
        ),
    }


def test_the_bulk_path_writes_what_the_one_by_one_path_writes(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(timezone, "now", lambda: T0)  # both paths stamp rows with the same clock
    bulk_account, reference_account = AccountFactory(slug="bulk"), AccountFactory(slug="reference")

    with django_capture_on_commit_callbacks(execute=True):
        bulk_results = fire(bulk_account, bulk=True)
        reference_results = fire(reference_account, bulk=False)

    assert bulk_results == reference_results
    assert [r if isinstance(r, bool) else r[0] for r in bulk_results] == [
        True, True, True, True, True, True, "slug", "email", True, True, False, True, True, True
    ]  # fmt: skip
    expected, got = snapshot(reference_account), snapshot(bulk_account)
    for table in expected:
        assert got[table] == expected[table], table
    assert len(expected["events"]) == 11
    # The new visitor's anonymous contact became Edsger; Barbara's visitor was merged into her contact.
    assert [c[0] for c in expected["contacts"]] == [
        "ada@example.com",
        "barbara@example.com",
        "edsger@example.com",
        "grace@example.com",
        "known@example.com",
        "linus@example.com",
        "margaret@example.com",
    ]
    assert [(kind, email, status) for kind, email, _, status, _ in expected["runs"]] == [
        ("add_tag", "barbara@example.com", "succeeded"),
        ("add_tag", "grace@example.com", "succeeded"),
        ("add_tag", "linus@example.com", "succeeded"),
        ("change_score", "barbara@example.com", "skipped"),
        ("change_score", "grace@example.com", "skipped"),
        ("change_score", "linus@example.com", "succeeded"),
    ]


def test_a_batch_finds_and_creates_its_contacts_in_a_few_queries(account):
    CustomEventFactory(account=account, slug="watched-video")
    ContactFactory(account=account, email="known@example.com")
    emails = ["known@example.com"] + [f"reader{n}@example.com" for n in range(50)]
    requests = [clean({"slug": "watched-video", "email": email}) for email in emails * 2]

    with CaptureQueriesContext(connection) as queries:
        results = services.custom_event_trigger_many(account=account, requests=requests)

    assert all(created for _, created in results)
    assert EventRecord.objects.filter(account=account).count() == 102
    assert Contact.objects.filter(account=account).count() == 51
    writes = [re.match(r"INSERT (?:OR IGNORE )?INTO (\S+)", q["sql"]) for q in queries]
    tables = [w[1] for w in writes if w]
    assert set(tables) == {'"tracking_contact"', '"tracking_eventrecord"'}
    if connection.vendor == "postgresql":  # SQLite splits an insert at 999 parameters
        assert tables == ['"tracking_contact"', '"tracking_eventrecord"']
        # The transaction, the contacts found, created and read back, the events: no query per event.
        assert len(queries) <= 8, [q["sql"][:60] for q in queries]

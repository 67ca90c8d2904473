"""Deleting a custom event, a marketing source or an account answers at once whatever it owns: the thing is hidden
everywhere immediately and a background task removes its rows in batches (automations/deletes.py)."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from automations.deletes import background_delete_run
from automations.models import (
    Action,
    ActionRun,
    BackgroundDelete,
    EventDailyBreakdown,
    EventDailyRollup,
    TrafficDailyRollup,
)
from automations.reports.services import report_rollups_update
from custom_events.models import CustomEvent, MarketingSource
from custom_events.services import custom_event_create, marketing_source_delete
from paminga.models import Account, ApiKey
from paminga.services import account_delete, api_key_create
from tests.automations.services import require_services
from tests.factories import AccountFactory, ActionFactory, ContactFactory, CustomEventFactory, MarketingSourceFactory
from tests.graphql.utils import GraphQLClient
from tracking.models import Contact, EventRecord, Impression, Session, Visitor

pytestmark = pytest.mark.django_db


def hit(client, account, slug, n):
    body = {"type": "event", "id": f"evt-{n:08d}", "visitor": "visitor-0001", "url": "https://acme.test/", "slug": slug}
    return client.post(
        f"/collect/{account.site_key}",
        data=json.dumps(body),
        content_type="text/plain;charset=UTF-8",
        headers={"Origin": "https://acme.test"},
    )


def owned_history(account, *, records=600):
    """`doomed` owning `records` occurrences (with action runs and rollups), `kept` owning a few."""
    doomed = CustomEventFactory(account=account, slug="doomed", name="Doomed")
    kept = CustomEventFactory(account=account, slug="kept", name="Kept")
    action = ActionFactory(custom_event=doomed, account=account)
    contact = ContactFactory(account=account)
    at = timezone.now() - timedelta(days=2)
    rows = [
        EventRecord(account=account, custom_event=doomed, contact=contact, source="api", occurred_at=at)
        for _ in range(records)
    ]
    EventRecord.objects.bulk_create(rows, batch_size=1000)
    EventRecord.objects.bulk_create(
        [
            EventRecord(account=account, custom_event=kept, contact=contact, source="api", occurred_at=at)
            for _ in range(7)
        ]
    )
    ActionRun.objects.bulk_create(
        [
            ActionRun(account=account, action=action, custom_event=doomed, event_record=r)
            for r in EventRecord.objects.filter(custom_event=doomed)[:100]
        ]
    )
    report_rollups_update(now=timezone.now() + timedelta(minutes=2))
    return doomed, kept


def test_deleting_a_definition_answers_at_once_and_the_task_removes_every_row(
    client_logged_in, account, settings, django_capture_on_commit_callbacks
):
    settings.BACKGROUND_DELETE_BATCH_SIZE = 100
    doomed, kept = owned_history(account)
    kept_before = sorted(EventRecord.objects.filter(custom_event=kept).values_list("pk", flat=True))
    kept_rollups = EventDailyRollup.objects.filter(custom_event=kept).count()
    assert EventDailyRollup.objects.filter(custom_event=doomed).exists()

    # when: the settings page deletes it (the task waits for the commit)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_logged_in.post(reverse("custom_events:delete", args=[doomed.pk]))

    # then: answered, gone from every page and from capture, its rows still there for now
    assert response.status_code == 302 and len(callbacks) == 1
    assert EventRecord.objects.filter(custom_event_id=doomed.pk).count() == 600
    listing = client_logged_in.get(reverse("custom_events:list")).content.decode()
    assert '<code class="nowrap">doomed</code>' not in listing
    assert "<strong>Doomed (doomed)</strong>: waiting to start" in listing
    assert client_logged_in.get(reverse("reports:event", args=[doomed.pk])).status_code == 404
    overview = client_logged_in.get(reverse("reports:overview")).content.decode()
    assert "Doomed" not in overview and "Kept" in overview
    assert client_logged_in.get(reverse("automations:event_actions", args=[doomed.pk])).status_code == 404
    assert hit(Client(), account, "doomed", 1).json()["code"] == "UNKNOWN_EVENT"
    assert hit(Client(), account, "kept", 2).status_code in (200, 202)
    # The slug can be used again at once.
    again = custom_event_create(account=account, name="Doomed again", slug="doomed")

    # when: the task runs
    callbacks[0]()

    job = BackgroundDelete.objects.get(kind="custom_event", target_id=doomed.pk)
    assert (job.status, job.rows_done, job.rows_total) == (
        "done",
        700 + kept_rollups * 0 + job.rows_total - 700,
        job.rows_total,
    )
    assert job.batches >= 7
    assert not CustomEvent.objects.filter(pk=doomed.pk).exists()
    assert not EventRecord.objects.filter(custom_event_id=doomed.pk).exists()
    assert not ActionRun.objects.filter(custom_event_id=doomed.pk).exists()
    assert not Action.objects.filter(custom_event_id=doomed.pk).exists()
    assert not EventDailyRollup.objects.filter(custom_event_id=doomed.pk).exists()
    assert not EventDailyBreakdown.objects.filter(custom_event_id=doomed.pk).exists()
    # what did not happen: the other event, its rollups, the new definition and the contact are untouched
    kept_after = sorted(EventRecord.objects.filter(custom_event=kept).values_list("pk", flat=True))
    assert kept_after[: len(kept_before)] == kept_before and len(kept_after) == len(kept_before) + 1
    assert EventDailyRollup.objects.filter(custom_event=kept).count() == kept_rollups
    assert CustomEvent.objects.filter(pk=again.pk).exists() and Contact.objects.filter(account=account).exists()
    assert "Being deleted" not in client_logged_in.get(reverse("custom_events:list")).content.decode()
    # Running it again finds it done.
    assert background_delete_run(job_id=job.pk).status == "done"


def test_the_task_rests_after_each_batch_in_proportion_to_its_time(account, settings, monkeypatch):
    # given: a definition with 600 records, batches of 100, and a rest twice as long as each batch
    settings.BACKGROUND_DELETE_BATCH_SIZE = 100
    settings.BACKGROUND_DELETE_REST_RATIO = 2.0
    doomed, _kept = owned_history(account)
    ticks = iter(range(0, 10_000, 3))  # each reading of the clock 3 s after the previous one
    monkeypatch.setattr("automations.deletes.time.monotonic", lambda: next(ticks))
    rests = []
    monkeypatch.setattr("automations.deletes.time.sleep", rests.append)
    doomed.deleted_at = timezone.now()
    doomed.save(update_fields=["deleted_at"])
    job = BackgroundDelete.objects.create(
        kind="custom_event", target_id=doomed.pk, account_pk=account.pk, label=doomed.name
    )

    # when
    done = background_delete_run(job_id=job.pk)

    # then: one rest after every batch that deleted rows, twice its 3 s
    assert done.status == "done" and done.batches >= 7
    assert rests == [6] * done.batches
    assert not EventRecord.objects.filter(custom_event_id=doomed.pk).exists()


def test_the_graphql_delete_hides_the_definition_and_schedules_the_task(
    client, account, django_capture_on_commit_callbacks
):
    gql = GraphQLClient(client, api_key_create(account=account, name="CRM")[1])
    doomed, _kept = owned_history(account, records=50)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        answer = gql.post('mutation { delete_custom_event(slug: "doomed") }').json()

    assert answer == {"data": {"delete_custom_event": True}} and len(callbacks) == 1
    assert gql.post('{ custom_event(slug: "doomed") { slug } }').json()["data"] == {"custom_event": None}
    fired = gql.post('mutation { triggerCustomEvent(input: {slug: "doomed", email: "a@example.com"}) }').json()
    assert fired["errors"][0]["extensions"]["code"] == "UNKNOWN_EVENT"
    report = gql.post('{ custom_events_report(start: "2026-01-01", end: "2026-12-31") { events { slug } } }').json()
    assert "doomed" not in json.dumps(report)
    callbacks[0]()
    assert not EventRecord.objects.filter(custom_event_id=doomed.pk).exists()


def test_a_marketing_source_is_hidden_at_once_and_its_events_unlinked_in_the_background(
    account, django_capture_on_commit_callbacks
):
    source = MarketingSourceFactory(account=account, name="Partner")
    event = CustomEventFactory(account=account)
    contact = ContactFactory(account=account)
    EventRecord.objects.bulk_create(
        [
            EventRecord(
                account=account,
                custom_event=event,
                contact=contact,
                source="api",
                occurred_at=timezone.now(),
                marketing_source=source,
                marketing_source_name="partner",
            )
            for _ in range(30)
        ]
    )
    with django_capture_on_commit_callbacks(execute=True):
        marketing_source_delete(marketing_source=source)

    assert not MarketingSource.objects.filter(pk=source.pk).exists()
    assert EventRecord.objects.filter(marketing_source_name="partner", marketing_source__isnull=True).count() == 30


def test_an_account_is_gone_at_once_and_its_rows_removed_in_the_background(
    account, other_account, django_capture_on_commit_callbacks, settings
):
    settings.BACKGROUND_DELETE_BATCH_SIZE = 50
    owned_history(account, records=120)
    _secret = api_key_create(account=account, name="CRM")[1]
    owned_history(other_account, records=10)
    theirs = EventRecord.objects.filter(account=other_account).count()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        account_delete(account=account)

    assert hit(Client(), account, "kept", 1).status_code in (403, 404)
    assert not ApiKey.objects.filter(account=account, revoked_at__isnull=True).exists()
    callbacks[0]()
    assert not Account.objects.filter(pk=account.pk).exists()
    for model in (EventRecord, Contact, Visitor, Session, Impression, ActionRun, EventDailyRollup, TrafficDailyRollup):
        assert not model.objects.filter(account_id=account.pk).exists(), model
    assert EventRecord.objects.filter(account=other_account).count() == theirs


@pytest.mark.django_db(transaction=True)
def test_capture_answers_while_a_delete_runs(settings):
    """A thread removes a big definition batch by batch (its own connection, as a worker) while this thread
    captures hits of another event. PostgreSQL: SQLite's in-memory test database has one writer at a time by
    design (the test above shows capture answering between batches there)."""
    require_services(postgresql=True)
    settings.BACKGROUND_DELETE_BATCH_SIZE = 200
    account = AccountFactory(name="Acme", slug="acme", domains=["acme.test"])
    doomed, kept = owned_history(account, records=6000)
    # Hidden as the service does, but the task run in a thread below rather than eagerly on commit.
    CustomEvent.objects.filter(pk=doomed.pk).update(deleted_at=timezone.now())
    job = BackgroundDelete.objects.create(account_pk=account.pk, kind="custom_event", target_id=doomed.pk, label="x")
    errors = []

    def run():
        try:
            background_delete_run(job_id=job.pk)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    client, answers, slowest, n = Client(), [], 0.0, 0
    while thread.is_alive() or n < 3:
        n += 1
        started = time.monotonic()
        answers.append(hit(client, account, "kept", 100 + n).status_code)
        slowest = max(slowest, time.monotonic() - started)
    thread.join()

    assert errors == []
    assert set(answers) <= {200, 202}
    assert EventRecord.objects.filter(custom_event=kept).count() == 7 + len(answers)
    assert not EventRecord.objects.filter(custom_event_id=doomed.pk).exists()
    assert BackgroundDelete.objects.get(pk=job.pk).batches >= 30
    assert slowest < 2.0


RAW_TABLES = ("tracking_eventrecord", "tracking_impression", "tracking_session", "tracking_rejectedhit")


def _statements_without_the_account(queries) -> list[str]:
    """The statements that read or write a raw table without naming its account: on PostgreSQL, a scan of every
    account's rows (no index leads with anything else they could use)."""
    return [
        query["sql"]
        for query in queries
        for table in RAW_TABLES
        if f'"{table}"' in query["sql"] and f'"{table}"."account_id"' not in query["sql"]
    ]


@pytest.mark.parametrize("kind", ["custom_event", "account"])
def test_every_statement_of_the_task_on_the_raw_tables_names_the_account(account, other_account, settings, kind):
    settings.BACKGROUND_DELETE_BATCH_SIZE = 50
    settings.BACKGROUND_DELETE_REST_RATIO = 0
    doomed, _kept = owned_history(account, records=120)
    owned_history(other_account, records=10)
    if kind == "custom_event":
        CustomEvent.objects.filter(pk=doomed.pk).update(deleted_at=timezone.now())
        target = doomed.pk
    else:
        Account.objects.filter(pk=account.pk).update(deleted_at=timezone.now())
        target = account.pk
    job = BackgroundDelete.objects.create(account_pk=account.pk, kind=kind, target_id=target, label="x")

    with CaptureQueriesContext(connection) as queries:
        background_delete_run(job_id=job.pk)

    assert BackgroundDelete.objects.get(pk=job.pk).status == BackgroundDelete.Status.DONE
    left = _statements_without_the_account(queries.captured_queries)
    assert left == [], "\n".join(left)


def test_occurrences_recorded_while_the_task_ran_go_with_the_definition(account, monkeypatch):
    from automations import deletes

    doomed, kept = owned_history(account, records=20)
    CustomEvent.objects.filter(pk=doomed.pk).update(deleted_at=timezone.now())
    job = BackgroundDelete.objects.create(account_pk=account.pk, kind="custom_event", target_id=doomed.pk, label="x")
    contact = ContactFactory(account=account)
    target_delete = deletes._target_delete

    def late_record_then_delete(job, size):
        # Ingest had loaded the definition before it was deleted, and records after the batches went.
        EventRecord.objects.create(
            account=account, custom_event_id=doomed.pk, contact=contact, source="api", occurred_at=timezone.now()
        )
        target_delete(job, size)

    monkeypatch.setattr(deletes, "_target_delete", late_record_then_delete)
    background_delete_run(job_id=job.pk)

    assert not CustomEvent.objects.filter(pk=doomed.pk).exists()
    assert not EventRecord.objects.filter(custom_event_id=doomed.pk).exists()
    assert not ActionRun.objects.filter(custom_event_id=doomed.pk).exists()
    assert EventRecord.objects.filter(custom_event=kept).count() == 7

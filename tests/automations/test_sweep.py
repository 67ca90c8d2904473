"""Nothing is lost when the broker is down, and the sweep (Celery beat, or the management command) picks up
what a broker outage, a lost message or a dead worker left behind."""

import io
import json
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from automations import services, tasks
from automations.models import ActionRun
from paminga.celery import app
from paminga.services import api_key_create
from tests.automations.services import celery_use_broker, free_port
from tests.factories import ActionFactory, ActionRunFactory, EventRecordFactory
from tracking.models import Contact, EventRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down():
    restore = celery_use_broker(f"redis://127.0.0.1:{free_port()}/0")
    yield
    restore()


@pytest.fixture
def score_action(event):
    return ActionFactory(custom_event=event, kind="change_score", config={"delta": 5})


def sweep(*args) -> dict:
    out = io.StringIO()
    call_command("action_runs_sweep", *args, stdout=out)
    return json.loads(out.getvalue())


def test_broker_down_the_event_is_recorded_and_the_run_completes_after_the_sweep(
    score_action, event, contact, fire, broker_down
):
    started = time.monotonic()
    record = fire(event, contact)
    elapsed = time.monotonic() - started

    assert EventRecord.objects.filter(pk=record.pk).exists()
    run = ActionRun.objects.get(event_record=record)
    assert (run.status, run.attempts) == ("pending", 0)
    assert elapsed < 5, "an unreachable broker must not hold the request up"

    # Still down: the operator's sweep says so, and the run stays pending (and is not pushed back).
    with pytest.raises(CommandError, match="1 run\\(s\\) could not be enqueued"):
        sweep("--older-than", "0")
    run.refresh_from_db()
    assert (run.status, run.next_attempt_at) == ("pending", None)

    celery_use_broker(None)  # the broker is back (tasks run in-process here; test_worker.py uses a real one)
    assert sweep("--older-than", "0") == {"enqueued": 1, "not_enqueued": 0, "stale_recovered": 0, "waiting_expired": 0}

    run.refresh_from_db()
    contact.refresh_from_db()
    assert (run.status, run.attempts) == ("succeeded", 1)
    assert contact.score == 5


def test_after_a_failed_publish_the_process_stops_trying_for_a_while(
    score_action, event, contact, fire, monkeypatch, broker_down
):
    calls = []

    def unreachable(run_id):
        calls.append(run_id)
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.action_run_task, "delay", unreachable)

    first = fire(event, contact)
    second = fire(event, contact)

    assert calls == [ActionRun.objects.get(event_record=first).pk]  # the second event did not wait on the broker
    assert set(ActionRun.objects.values_list("status", flat=True)) == {"pending"}
    assert services.action_runs_enqueue(run_ids=[1], force=True) == 0 and len(calls) == 2  # the sweep still tries
    assert EventRecord.objects.filter(pk__in=[first.pk, second.pk]).count() == 2


def test_fresh_pending_runs_are_left_to_their_own_message(score_action, event, contact, monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.action_run_task, "delay", sent.append)
    ActionRunFactory(action=score_action, event_record=EventRecordFactory(custom_event=event, contact=contact))
    old = ActionRunFactory(action=score_action, event_record=EventRecordFactory(custom_event=event, contact=contact))
    ActionRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=5))

    assert sweep()["enqueued"] == 1
    assert sent == [old.pk]

    # Sent once: the next sweep leaves it alone for another interval instead of flooding the queue.
    assert sweep()["enqueued"] == 0
    assert sent == [old.pk]


def test_a_run_overdue_for_its_retry_is_enqueued(score_action, event, contact):
    run = ActionRunFactory(
        action=score_action,
        event_record=EventRecordFactory(custom_event=event, contact=contact),
        status="retrying",
        attempts=2,
        next_attempt_at=timezone.now() - timedelta(minutes=10),
    )
    not_due = ActionRunFactory(
        action=score_action,
        event_record=EventRecordFactory(custom_event=event, contact=contact),
        status="retrying",
        attempts=1,
        next_attempt_at=timezone.now() + timedelta(minutes=1),
    )

    assert sweep()["enqueued"] == 1

    run.refresh_from_db()
    not_due.refresh_from_db()
    assert (run.status, run.attempts) == ("succeeded", 3)
    assert not_due.status == "retrying"


def test_a_run_whose_worker_died_is_retried(score_action, event, contact, settings):
    settings.AUTOMATIONS_STALE_RUNNING_SECONDS = 300
    dead = ActionRunFactory(
        action=score_action,
        event_record=EventRecordFactory(custom_event=event, contact=contact),
        status="running",
        attempts=1,
        started_at=timezone.now() - timedelta(minutes=6),
    )
    busy = ActionRunFactory(
        action=score_action,
        event_record=EventRecordFactory(custom_event=event, contact=contact),
        status="running",
        attempts=1,
        started_at=timezone.now() - timedelta(minutes=1),
    )

    result = sweep("--older-than", "0")

    assert (result["stale_recovered"], result["enqueued"]) == (1, 1)
    dead.refresh_from_db()
    busy.refresh_from_db()
    assert (dead.status, dead.attempts) == ("succeeded", 2)
    assert dead.last_error == "The worker stopped while running this action (crash or time limit)."
    assert busy.status == "running"


def test_a_dead_run_out_of_attempts_fails(score_action, event, contact, settings):
    settings.AUTOMATIONS_MAX_ATTEMPTS = 3
    run = ActionRunFactory(
        action=score_action,
        event_record=EventRecordFactory(custom_event=event, contact=contact),
        status="running",
        attempts=3,
        started_at=timezone.now() - timedelta(hours=1),
    )

    assert sweep()["stale_recovered"] == 1

    run.refresh_from_db()
    assert run.status == "failed" and run.finished_at is not None
    assert run.last_error == (
        "Gave up after 3 attempts. Last error: The worker stopped while running this action (crash or time limit)."
    )


def test_runs_waiting_too_long_for_identification_are_skipped(score_action, event, anonymous_contact, settings):
    settings.AUTOMATIONS_WAITING_EXPIRE_DAYS = 30
    old = ActionRunFactory(
        action=score_action,
        event_record=EventRecordFactory(custom_event=event, contact=anonymous_contact),
        status="waiting",
    )
    ActionRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    recent = ActionRunFactory(
        action=score_action,
        event_record=EventRecordFactory(custom_event=event, contact=anonymous_contact),
        status="waiting",
    )

    assert sweep()["waiting_expired"] == 1

    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.status, old.result) == ("skipped", "The visitor was not identified within 30 days.")
    assert recent.status == "waiting"


def test_command_rejects_bad_options():
    with pytest.raises(CommandError, match="--older-than must be 0 or more seconds."):
        sweep("--older-than", "-1")
    with pytest.raises(CommandError, match="--limit must be between 1 and 100000."):
        sweep("--limit", "0")


def test_beat_runs_the_sweep_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["automations-action-runs-sweep"]
    assert entry == {"task": "automations.tasks.action_runs_sweep_task", "schedule": 60.0}
    assert app.conf.beat_schedule == settings.CELERY_BEAT_SCHEDULE
    assert entry["task"] in app.tasks


def test_the_sweep_task_sweeps(score_action, event, contact):
    run = ActionRunFactory(action=score_action, event_record=EventRecordFactory(custom_event=event, contact=contact))
    ActionRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=5))

    tasks.action_runs_sweep_task.delay()

    run.refresh_from_db()
    assert run.status == "succeeded"


def test_broker_down_a_request_that_enqueues_still_succeeds(
    client_logged_in, score_action, event, contact, broker_down, django_capture_on_commit_callbacks
):
    run = ActionRunFactory(
        action=score_action,
        event_record=EventRecordFactory(custom_event=event, contact=contact),
        status="failed",
        attempts=5,
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = client_logged_in.post(reverse("automations:action_run_retry", args=[event.pk, run.pk]))

    assert response.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("pending", 0)

    celery_use_broker(None)
    assert sweep("--older-than", "0")["enqueued"] == 1
    run.refresh_from_db()
    contact.refresh_from_db()
    assert (run.status, contact.score) == ("succeeded", 5)


def test_broker_down_the_graphql_call_still_succeeds_and_the_run_completes_after_the_sweep(
    client, account, score_action, event, broker_down, django_capture_on_commit_callbacks
):
    _, key = api_key_create(account=account, name="backend")
    mutation = 'mutation { triggerCustomEvent(input: { slug: "requested-demo" email: "outage@example.com" }) }'

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/graphql/",
            json.dumps({"query": mutation}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )

    assert response.status_code == 200 and response.json() == {"data": {"triggerCustomEvent": True}}
    record = EventRecord.objects.get(account=account, contact__email="outage@example.com")
    run = ActionRun.objects.get(event_record=record)
    assert (run.status, run.attempts) == ("pending", 0)

    celery_use_broker(None)
    assert sweep("--older-than", "0")["enqueued"] == 1
    run.refresh_from_db()
    assert (run.status, Contact.objects.get(pk=record.contact_id).score) == ("succeeded", 5)

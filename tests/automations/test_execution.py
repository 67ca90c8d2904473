"""Running a run: exactly-once effects, retries with backoff, permanent and transient failures."""

import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from automations import services
from automations.actions import PermanentError, TransientError
from automations.actions.add_tag import AddTag
from automations.actions.change_score import ChangeScore
from automations.models import ActionRun
from automations.services import RunOutcome, action_run_execute
from automations.tasks import action_run_task
from tests.automations.services import require_services
from tests.factories import ActionFactory, ActionRunFactory, EventRecordFactory
from tracking.models import Contact, ContactTag

pytestmark = pytest.mark.django_db


@pytest.fixture
def score_run(event, contact):
    action = ActionFactory(custom_event=event, kind="change_score", config={"delta": 5})
    return ActionRunFactory(action=action, event_record=EventRecordFactory(custom_event=event, contact=contact))


def failing(monkeypatch, kind_cls, errors):
    """Makes kind_cls.run raise the given errors in turn, then run normally. Returns the list of calls."""
    calls = []
    original = kind_cls.run

    def run(self, ctx):
        calls.append(ctx.run.attempts)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return original(self, ctx)

    monkeypatch.setattr(kind_cls, "run", run)
    return calls


def test_the_same_run_delivered_twice_applies_once(score_run, contact):
    action_run_task.delay(score_run.pk)
    action_run_task.delay(score_run.pk)
    action_run_task.apply(args=[score_run.pk])

    contact.refresh_from_db()
    score_run.refresh_from_db()
    assert contact.score == 5
    assert (score_run.status, score_run.attempts) == ("succeeded", 1)


def test_a_worker_dying_mid_effect_rolls_the_effect_back_and_the_redelivery_applies_it_once(
    score_run, contact, monkeypatch
):
    original = ChangeScore.run

    def apply_then_die(self, ctx):
        original(self, ctx)
        raise SystemExit("worker killed")  # not an Exception: nothing in the runner catches it

    monkeypatch.setattr(ChangeScore, "run", apply_then_die)
    with pytest.raises(SystemExit):
        action_run_execute(run_id=score_run.pk)

    contact.refresh_from_db()
    score_run.refresh_from_db()
    assert contact.score == 0
    assert (score_run.status, score_run.attempts) == ("pending", 0)

    monkeypatch.setattr(ChangeScore, "run", original)
    action_run_task.delay(score_run.pk)  # the broker redelivers the unacknowledged message

    contact.refresh_from_db()
    assert contact.score == 5


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_apply_once(account, event, contact, monkeypatch):
    # Two connections at once: SQLite's shared in-memory test database answers "table is locked" instead of
    # waiting, so this runs on a database server (PostgreSQL, as in CI), where the run's row lock is what we test.
    require_services(postgresql=True)
    action = ActionFactory(custom_event=event, kind="change_score", config={"delta": 5})
    run = ActionRunFactory(action=action, event_record=EventRecordFactory(custom_event=event, contact=contact))
    original = ChangeScore.run

    def slow(self, ctx):
        time.sleep(0.3)  # the second delivery arrives while the first holds the run
        return original(self, ctx)

    monkeypatch.setattr(ChangeScore, "run", slow)
    outcomes = []

    def deliver():
        try:
            outcomes.append(action_run_execute(run_id=run.pk).status)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    contact.refresh_from_db()
    run.refresh_from_db()
    assert sorted(outcomes) == ["succeeded", "succeeded"]
    assert contact.score == 5 and (run.status, run.attempts) == ("succeeded", 1)


def test_an_external_run_claimed_by_another_worker_is_left_alone(event, contact):
    action = ActionFactory(custom_event=event, kind="notify_email", config={"to": ["team@acme.test"]})
    run = ActionRunFactory(
        action=action,
        event_record=EventRecordFactory(custom_event=event, contact=contact),
        status="running",
        attempts=1,
    )

    action_run_task.delay(run.pk)

    run.refresh_from_db()
    assert (run.status, run.attempts) == ("running", 1)
    assert mail.outbox == []


def test_transient_errors_are_retried_then_succeed(event, contact, fire, monkeypatch):
    calls = failing(monkeypatch, AddTag, [TransientError("flaky 1"), TransientError("flaky 2")])
    ActionFactory(custom_event=event, kind="add_tag", config={"tag": "x"})

    record = fire(event, contact)

    run = ActionRun.objects.get(event_record=record)
    assert calls == [1, 2, 3]
    assert (run.status, run.attempts, run.last_error, run.result) == ("succeeded", 3, "flaky 2", "Added tag “x”")
    assert ContactTag.objects.filter(contact=contact).count() == 1


def test_transient_errors_give_up_after_the_attempt_limit(event, contact, fire, monkeypatch, settings):
    settings.AUTOMATIONS_MAX_ATTEMPTS = 3
    calls = failing(monkeypatch, AddTag, [TransientError("down")] * 10)
    ActionFactory(custom_event=event, kind="add_tag", config={"tag": "x"})

    run = ActionRun.objects.get(event_record=fire(event, contact))

    assert calls == [1, 2, 3]
    assert (run.status, run.attempts) == ("failed", 3)
    assert run.last_error == "Gave up after 3 attempts. Last error: down"
    assert run.finished_at is not None and run.next_attempt_at is None
    assert not ContactTag.objects.exists()


def test_a_permanent_error_stops_at_once(event, contact, fire, monkeypatch):
    calls = failing(monkeypatch, AddTag, [PermanentError("not allowed")])
    ActionFactory(custom_event=event, kind="add_tag", config={"tag": "x"})

    run = ActionRun.objects.get(event_record=fire(event, contact))

    assert calls == [1]
    assert (run.status, run.attempts, run.last_error) == ("failed", 1, "not allowed")


def test_an_unexpected_error_is_retried_and_reported(event, contact, fire, monkeypatch, settings):
    settings.AUTOMATIONS_MAX_ATTEMPTS = 2
    failing(monkeypatch, AddTag, [ValueError("boom")] * 2)
    ActionFactory(custom_event=event, kind="add_tag", config={"tag": "x"})

    run = ActionRun.objects.get(event_record=fire(event, contact))

    assert (run.status, run.attempts) == ("failed", 2)
    assert run.last_error == "Gave up after 2 attempts. Last error: Unexpected error: ValueError: boom"


def test_backoff_doubles_and_is_capped(score_run, monkeypatch, settings):
    settings.AUTOMATIONS_RETRY_BACKOFF_SECONDS = 10
    settings.AUTOMATIONS_RETRY_BACKOFF_MAX_SECONDS = 35
    settings.AUTOMATIONS_MAX_ATTEMPTS = 10
    failing(monkeypatch, ChangeScore, [TransientError("later")] * 10)

    delays = []
    for _ in range(4):
        before = timezone.now()
        outcome = action_run_execute(run_id=score_run.pk)
        score_run.refresh_from_db()
        assert score_run.status == "retrying"
        assert before + timedelta(seconds=outcome.retry_in) <= score_run.next_attempt_at
        delays.append(outcome.retry_in)

    assert delays == [10, 20, 35, 35]
    assert score_run.attempts == 4


def test_the_task_retries_with_the_services_countdown(score_run, monkeypatch):
    outcomes = iter([RunOutcome("retrying", retry_in=40), RunOutcome("succeeded")])
    monkeypatch.setattr(services, "action_run_execute", lambda *, run_id: next(outcomes))
    countdowns = []
    real_retry = action_run_task.retry

    def spy(*args, **kwargs):
        countdowns.append(kwargs.get("countdown"))
        return real_retry(*args, **kwargs)

    monkeypatch.setattr(action_run_task, "retry", spy)

    action_run_task.apply(args=[score_run.pk])

    assert countdowns == [40]
    assert next(outcomes, "exhausted") == "exhausted"


def test_a_disabled_action_is_skipped_when_its_run_comes_up(score_run, contact):
    score_run.action.enabled = False
    score_run.action.save()

    action_run_task.delay(score_run.pk)

    score_run.refresh_from_db()
    contact.refresh_from_db()
    assert (score_run.status, score_run.result) == ("skipped", "The action was disabled before it ran.")
    assert contact.score == 0


def test_a_deleted_run_is_ignored():
    assert action_run_execute(run_id=987654) is None
    action_run_task.delay(987654)  # no error


def test_records_timing(score_run):
    action_run_execute(run_id=score_run.pk)

    score_run.refresh_from_db()
    assert score_run.started_at <= score_run.finished_at
    assert 0 <= score_run.duration_ms < 5000


def test_score_updates_from_concurrent_runs_are_not_lost(event, contact):
    # Each run changes the score with one UPDATE, so interleaved runs never overwrite each other.
    action = ActionFactory(custom_event=event, kind="change_score", config={"delta": 3})
    runs = [
        ActionRunFactory(action=action, event_record=EventRecordFactory(custom_event=event, contact=contact))
        for _ in range(4)
    ]
    Contact.objects.filter(pk=contact.pk).update(score=100)

    for run in runs:
        action_run_execute(run_id=run.pk)

    contact.refresh_from_db()
    assert contact.score == 112

"""End to end with a real Celery worker consuming from Redis: events recorded through
tracking.services.event_record (the one write path behind the beacon and the API), sent to the beacon's collect
endpoint and fired through the GraphQL endpoint (triggerCustomEvent over HTTP) run their actions in the worker.
Needs REDIS_URL (CI: redis db 14) and PostgreSQL (the worker thread writes while the test reads, which SQLite's
shared in-memory test database refuses); skips with the reason without them, fails under REQUIRE_SERVICES=1."""

import io
import json
import time
from contextlib import contextmanager

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.core.management import call_command
from django.db import connections, transaction
from werkzeug import Response

from automations.models import ActionRun
from paminga.celery import app
from paminga.services import api_key_create
from tests.automations.services import celery_use_broker, free_port, require_services
from tests.factories import ActionFactory, ContactFactory, CustomEventFactory, VisitorFactory
from tracking.ingest import event_record
from tracking.models import Contact, ContactTag, Visitor
from tracking.services import contact_identify

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_url():
    return require_services(redis=True, postgresql=True)


def _close_connections(**kwargs):
    # The worker thread's own connections: closed after each task, or they would outlive the test (and keep the
    # test database from being dropped), since workers reuse connections across tasks (CELERY_DB_REUSE_MAX).
    connections.close_all()


@contextmanager
def running_worker(redis_url):
    restore = celery_use_broker(redis_url)
    task_postrun.connect(_close_connections)
    try:
        app.control.purge()  # messages left by an interrupted earlier run would only add noise
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        task_postrun.disconnect(_close_connections)
        restore()


@pytest.fixture
def worker(redis_url):
    with running_worker(redis_url):
        yield


def record(custom_event, contact, **kwargs):
    """Records an event the way the beacon and the API do: in a transaction that commits, then enqueues."""
    kwargs.setdefault("source", "api")
    with transaction.atomic():
        result, _ = event_record(account=custom_event.account, custom_event=custom_event, contact=contact, **kwargs)
    return result


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not done within {timeout:g} s")


def finished(runs):
    return lambda: all(s in ("succeeded", "failed", "skipped") for s in runs.values_list("status", flat=True))


@pytest.fixture
def setup(account):
    event = CustomEventFactory(account=account, slug="requested-demo", name="Requested Demo")
    ActionFactory(custom_event=event, kind="add_tag", config={"tag": "demo"}, position=0)
    ActionFactory(custom_event=event, kind="change_score", config={"delta": 7}, position=1)
    return event


def test_a_real_worker_runs_the_actions_of_a_recorded_event(setup, account, worker):
    contact = ContactFactory(account=account, email="jane@example.com")

    first = record(setup, contact, metadata={"planTier": "enterprise"})
    record(setup, contact)

    runs = ActionRun.objects.filter(event_record__contact=contact)
    assert runs.count() == 4
    wait_for(finished(runs))
    assert set(runs.values_list("status", "attempts")) == {("succeeded", 1)}
    contact.refresh_from_db()
    assert contact.score == 14
    assert list(ContactTag.objects.filter(contact=contact).values_list("name", flat=True)) == ["demo"]
    assert all(r.duration_ms is not None for r in ActionRun.objects.filter(event_record=first))


def test_a_real_worker_runs_the_actions_of_an_event_fired_through_graphql(setup, account, worker, client):
    _, key = api_key_create(account=account, name="backend")
    # The spec's mutation, verbatim apart from the slug and email.
    mutation = 'mutation { triggerCustomEvent(input: { slug: "requested-demo" email: "api@example.com" }) }'

    response = client.post(
        "/graphql/",
        json.dumps({"query": mutation}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )

    assert response.status_code == 200 and response.json() == {"data": {"triggerCustomEvent": True}}
    runs = ActionRun.objects.filter(event_record__contact__email="api@example.com")
    assert runs.count() == 2
    wait_for(finished(runs))
    contact = Contact.objects.get(account=account, email="api@example.com")
    assert contact.score == 7 and list(contact.tags.values_list("name", flat=True)) == ["demo"]
    assert set(runs.values_list("status", "attempts")) == {("succeeded", 1)}


def test_a_real_worker_runs_the_actions_of_an_event_fired_through_the_beacon_endpoint(setup, account, worker, client):
    from tests.tracking.test_collect import event, impression, post

    # A page view, then the event, as the beacon sends them (the account's domain is acme.test).
    assert post(client, account, impression(visitor="worker-visitor-1")).status_code == 200
    response = post(client, account, event("requested-demo", visitor="worker-visitor-1", metadata={"planTier": "pro"}))

    assert response.status_code == 200
    visitor = Visitor.objects.get(account=account, uid="worker-visitor-1")
    runs = ActionRun.objects.filter(event_record__visitor=visitor)
    assert runs.count() == 2
    wait_for(finished(runs))
    assert set(runs.values_list("status", "attempts")) == {("succeeded", 1)}
    contact = Contact.objects.get(pk=visitor.contact_id)
    assert contact.score == 7 and list(contact.tags.values_list("name", flat=True)) == ["demo"]


def test_a_real_worker_runs_waiting_runs_once_the_visitor_is_identified(setup, account, worker):
    ActionFactory(custom_event=setup, kind="set_field", config={"field": "stage", "value": "demo"}, position=2)
    visitor = VisitorFactory(account=account)
    record(setup, visitor.contact, visitor=visitor, source="beacon")
    runs = ActionRun.objects.filter(action__kind="set_field")
    wait_for(lambda: ActionRun.objects.filter(status="succeeded").count() == 2)  # tag and score: no need to wait
    assert list(runs.values_list("status", flat=True)) == ["waiting"]

    contact = contact_identify(account=account, visitor=visitor, email="identified@example.com")

    wait_for(finished(runs))
    contact.refresh_from_db()
    assert (contact.score, contact.fields) == (7, {"stage": "demo"})
    assert set(ActionRun.objects.values_list("status", flat=True)) == {"succeeded"}


def test_a_real_worker_retries_a_webhook_with_backoff(account, httpserver, settings, worker):
    settings.AUTOMATIONS_RETRY_BACKOFF_SECONDS = 1
    answers = iter([(500, "oops"), (503, "busy"), (200, "ok")])
    seen = []

    def handler(request):
        seen.append(time.monotonic())
        status, body = next(answers)
        return Response(body, status=status)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    event = CustomEventFactory(account=account, slug="signed-up")
    ActionFactory(custom_event=event, kind="webhook", config={"url": httpserver.url_for("/hook")})
    contact = ContactFactory(account=account, email="hook@example.com")

    runs = ActionRun.objects.filter(event_record=record(event, contact))

    wait_for(finished(runs))
    run = runs.get()
    assert (run.status, run.attempts, run.last_error) == ("succeeded", 3, "HTTP 503: busy")
    # The backoff waited 1 s, then 2 s, between the attempts.
    assert seen[1] - seen[0] >= 0.9 and seen[2] - seen[1] >= 1.9


def test_broker_down_then_back_with_a_real_worker(setup, account, redis_url):
    contact = ContactFactory(account=account, email="outage@example.com")
    restore = celery_use_broker(f"redis://127.0.0.1:{free_port()}/0")
    try:
        recorded = record(setup, contact)
    finally:
        restore()
    runs = ActionRun.objects.filter(event_record=recorded)
    assert set(runs.values_list("status", flat=True)) == {"pending"}

    with running_worker(redis_url):
        call_command("action_runs_sweep", "--older-than", "0", stdout=io.StringIO())
        wait_for(finished(runs))

    contact.refresh_from_db()
    assert contact.score == 7 and set(runs.values_list("status", flat=True)) == {"succeeded"}

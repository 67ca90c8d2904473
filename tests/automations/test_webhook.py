"""Webhooks against a real loopback HTTP server: signing, retries on transient failures, permanent failures."""

import hashlib
import hmac
import json
import time

import pytest
from werkzeug import Response

from automations.models import ActionRun
from paminga.services import account_webhook_secret_rotate
from tests.automations.services import free_port
from tests.factories import ActionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(event, httpserver):
    def make(timeout=None):
        config = {"url": httpserver.url_for("/hooks/paminga")}
        if timeout is not None:
            config["timeout"] = timeout
        return ActionFactory(custom_event=event, kind="webhook", config=config)

    return make


def responder(*answers):
    """A handler answering each request with the next (status, body) or callable; records the requests."""
    requests = []

    def handler(request):
        requests.append({"headers": dict(request.headers), "body": request.get_data()})
        answer = answers[min(len(requests), len(answers)) - 1]
        if callable(answer):
            answer = answer()
        status, body = answer
        return Response(body, status=status)

    return handler, requests


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    # What a receiver computes (docs/automations.md), written independently of the sender's code.
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def test_fails_twice_then_succeeds(hook, httpserver, event, contact, fire):
    handler, requests = responder((503, "maintenance"), (502, "bad gateway"), (200, "ok"))
    httpserver.expect_request("/hooks/paminga", method="POST").respond_with_handler(handler)
    hook()

    record = fire(event, contact, metadata={"planTier": "enterprise"})

    run = ActionRun.objects.get(event_record=record)
    assert len(requests) == 3
    assert (run.status, run.attempts, run.result) == ("succeeded", 3, "HTTP 200")
    assert run.last_error == "HTTP 502: bad gateway"
    # The same delivery id on every attempt, so the receiver can tell a retry from a new event.
    assert {r["headers"]["X-Paminga-Delivery"] for r in requests} == {str(run.pk)}


def test_a_4xx_stops_at_once(hook, httpserver, event, contact, fire):
    handler, requests = responder((400, "unknown field"))
    httpserver.expect_request("/hooks/paminga", method="POST").respond_with_handler(handler)
    hook()

    run = ActionRun.objects.get(event_record=fire(event, contact))

    assert len(requests) == 1
    assert (run.status, run.attempts, run.last_error) == ("failed", 1, "HTTP 400: unknown field")


def test_429_is_transient(hook, httpserver, event, contact, fire):
    handler, requests = responder((429, "slow down"), (204, ""))
    httpserver.expect_request("/hooks/paminga", method="POST").respond_with_handler(handler)
    hook()

    run = ActionRun.objects.get(event_record=fire(event, contact))

    assert len(requests) == 2 and (run.status, run.attempts, run.result) == ("succeeded", 2, "HTTP 204")


def test_a_redirect_is_not_followed(hook, httpserver, event, contact, fire):
    handler, requests = responder((301, ""))
    httpserver.expect_request("/hooks/paminga", method="POST").respond_with_handler(handler)
    hook()

    run = ActionRun.objects.get(event_record=fire(event, contact))

    assert len(requests) == 1 and (run.status, run.attempts) == ("failed", 1)
    assert run.last_error == "HTTP 301 (redirects are not followed: use the final URL)"


def test_signature_and_payload(hook, httpserver, event, contact, fire, account):
    handler, requests = responder((200, "ok"))
    httpserver.expect_request("/hooks/paminga", method="POST").respond_with_handler(handler)
    hook()
    contact.tags.create(name="vip")

    before = int(time.time())
    record = fire(event, contact, metadata={"planTier": "enterprise", "seats": 40}, page_url="https://acme.test/p")

    (request,) = requests
    headers, body = request["headers"], request["body"]
    timestamp = headers["X-Paminga-Timestamp"]
    assert before <= int(timestamp) <= time.time()
    assert hmac.compare_digest(
        headers["X-Paminga-Signature"], expected_signature(account.webhook_secret, timestamp, body)
    )
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Paminga-Event"] == "requested-demo"
    payload = json.loads(body)
    assert payload["delivery_id"] == ActionRun.objects.get(event_record=record).pk
    assert payload["event"] == {
        "slug": "requested-demo",
        "name": "Requested Demo",
        "source": "api",
        "page_url": "https://acme.test/p",
        "is_conversion": False,
        "marketing_channel": "",
        "utm": {"utm_source": "", "utm_medium": "", "utm_campaign": "", "utm_term": "", "utm_content": ""},
    }
    assert payload["contact"] == {
        "id": contact.pk,
        "email": "jane@example.com",
        "score": 0,
        "fields": {},
        "tags": ["vip"],
    }
    assert payload["metadata"] == {"planTier": "enterprise", "seats": 40}
    assert payload["metadata_dropped"] is False
    assert payload["time"] == record.occurred_at.isoformat()
    # A tampered body does not verify.
    assert expected_signature(account.webhook_secret, timestamp, body + b" ") != headers["X-Paminga-Signature"]


def test_a_rotated_secret_signs_the_next_request(hook, httpserver, event, contact, fire, account):
    handler, requests = responder((200, "ok"))
    httpserver.expect_request("/hooks/paminga", method="POST").respond_with_handler(handler)
    hook()
    old = account.webhook_secret

    account_webhook_secret_rotate(account=account)
    fire(event, contact)

    account.refresh_from_db()
    headers, body = requests[0]["headers"], requests[0]["body"]
    assert account.webhook_secret != old and account.webhook_secret.startswith("whsec_")
    assert headers["X-Paminga-Signature"] == expected_signature(
        account.webhook_secret, headers["X-Paminga-Timestamp"], body
    )


def test_a_timeout_is_retried(hook, httpserver, event, contact, fire, settings):
    settings.AUTOMATIONS_MAX_ATTEMPTS = 2

    def slow():
        time.sleep(1.5)
        return 200, "late"

    handler, requests = responder(slow, (200, "ok"))
    httpserver.expect_request("/hooks/paminga", method="POST").respond_with_handler(handler)
    hook(timeout=1)

    run = ActionRun.objects.get(event_record=fire(event, contact))

    assert (run.status, run.attempts, run.last_error) == ("succeeded", 2, "No answer within 1 s.")


def test_a_refused_connection_is_transient(event, contact, fire, settings):
    settings.AUTOMATIONS_MAX_ATTEMPTS = 2
    ActionFactory(custom_event=event, kind="webhook", config={"url": f"http://127.0.0.1:{free_port()}/h"})

    run = ActionRun.objects.get(event_record=fire(event, contact))

    assert (run.status, run.attempts) == ("failed", 2)
    assert run.last_error.startswith("Gave up after 2 attempts. Last error: Connection failed: ConnectionRefusedError")


def test_private_addresses_are_refused_in_production(hook, httpserver, event, contact, fire, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    handler, requests = responder((200, "ok"))
    httpserver.expect_request("/hooks/paminga", method="POST").respond_with_handler(handler)
    hook()

    run = ActionRun.objects.get(event_record=fire(event, contact))

    assert requests == []
    assert (run.status, run.attempts) == ("failed", 1)
    assert run.last_error == (
        "127.0.0.1 resolves to 127.0.0.1, a private or local address; webhooks only go to public addresses."
    )

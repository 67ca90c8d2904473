import json

import pytest

from tests.factories import CustomEventFactory
from tracking.models import RejectedHit
from tracking.services import rejected_hit_record

pytestmark = pytest.mark.django_db

URL = "/settings/account/event-debugger/"


def test_lists_the_accounts_entries_newest_first_escaped(client_logged_in, account, other_account):
    rejected_hit_record(account=account, reason="MALFORMED", message="The request body is not valid JSON.")
    rejected_hit_record(
        account=account,
        reason="UNKNOWN_EVENT",
        message="No custom event “<b>x</b>”",
        slug="<script>alert(1)</script>",
        excerpt='{"slug": "<img src=x onerror=alert(1)>"}',
    )
    rejected_hit_record(account=other_account, reason="MALFORMED", message="Globex secret entry")

    response = client_logged_in.get(URL)

    body = response.content.decode()
    assert response.status_code == 200
    assert body.index("Unknown or deleted event slug") < body.index("The request body is not valid JSON.")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert(1)" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body and "<b>x</b>" not in body
    assert "Globex secret entry" not in body
    assert 'href="/settings/account/event-debugger/" aria-current="page"' in body


def test_filter_by_reason(client_logged_in, account):
    rejected_hit_record(account=account, reason="MALFORMED", message="bad json")
    rejected_hit_record(account=account, reason="UNKNOWN_EVENT", message="no such slug")

    body = client_logged_in.get(URL, {"reason": "UNKNOWN_EVENT"}).content.decode()
    everything = client_logged_in.get(URL, {"reason": "NOT_A_REASON"}).content.decode()

    assert "no such slug" in body and "bad json" not in body
    assert "no such slug" in everything and "bad json" in everything


def test_empty_state(client_logged_in, account):
    assert "every hit the beacon sent" in client_logged_in.get(URL).content.decode()


def test_login_required(client, account):
    response = client.get(URL)

    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_flood_of_bad_hits_writes_a_bounded_number_of_entries(client, account, settings):
    settings.TRACKING_DEBUGGER_MAX_PER_MINUTE = 5
    CustomEventFactory(account=account, slug="known")

    statuses = set()
    for i in range(20):
        body = {"type": "event", "id": f"evt-{i:08d}", "visitor": "visitor-0001", "slug": f"unknown-{i}"}
        statuses.add(
            client.post(f"/collect/{account.site_key}", json.dumps(body), content_type="text/plain").status_code
        )
    client.post(f"/collect/{account.site_key}", "not json", content_type="text/plain")

    # Every bad hit is still answered with its error; only the debugger writes are capped, per reason.
    assert statuses == {422}
    assert RejectedHit.objects.filter(reason="UNKNOWN_EVENT").count() == 5
    assert RejectedHit.objects.filter(reason="MALFORMED").count() == 1


def test_only_the_newest_entries_are_kept(account, other_account, settings):
    settings.TRACKING_DEBUGGER_KEEP = 3
    for i in range(5):
        RejectedHit.objects.create(account=account, reason="MALFORMED", message=f"old {i}")
    RejectedHit.objects.create(account=other_account, reason="MALFORMED", message="other account")

    # The first entry of a new minute prunes.
    rejected_hit_record(account=account, reason="MALFORMED", message="new")

    assert list(RejectedHit.objects.filter(account=account).values_list("message", flat=True)) == [
        "new",
        "old 4",
        "old 3",
    ]
    assert RejectedHit.objects.filter(account=other_account).count() == 1

"""Global Privacy Control and Do Not Track on the collect endpoint (tracking.privacy)."""

import json

import pytest

from paminga.services import account_update
from tracking.models import Contact, Impression, RejectedHit, Session, UntrackedHitCount, Visitor

pytestmark = pytest.mark.django_db

HIT = {"type": "impression", "id": "imp-0000001", "visitor": "visitor-0001", "url": "https://acme.test/", "age": 0}


def post(client, account, **headers):
    return client.post(
        f"/collect/{account.site_key}",
        json.dumps(HIT),
        content_type="text/plain",
        HTTP_ORIGIN="https://acme.test",
        **headers,
    )


def nothing_stored() -> bool:
    return not any(m.objects.exists() for m in (Contact, Visitor, Session, Impression, RejectedHit))


def test_gpc_hits_are_answered_counted_and_not_stored_when_the_account_honours_it(client, account):
    account_update(account=account, honour_gpc=True)

    first = post(client, account, HTTP_SEC_GPC="1")
    second = post(client, account, HTTP_SEC_GPC="1")

    assert first.status_code == second.status_code == 200
    assert first.json() == {"status": "not_tracked"}
    assert nothing_stored()
    assert list(UntrackedHitCount.objects.values_list("account_id", "reason", "count")) == [(account.pk, "GPC", 2)]


def test_gpc_is_recorded_as_usual_when_the_account_does_not_honour_it(client, account):
    response = post(client, account, HTTP_SEC_GPC="1")

    assert response.json()["status"] == "recorded"
    assert Impression.objects.count() == 1
    assert not UntrackedHitCount.objects.exists()


def test_dnt_counts_only_when_the_account_opts_in(client, account):
    account_update(account=account, honour_gpc=True)
    assert post(client, account, HTTP_DNT="1").json()["status"] == "recorded"

    account_update(account=account, honour_dnt=True)
    response = post(client, account, HTTP_DNT="1")

    assert response.json() == {"status": "not_tracked"}
    assert list(UntrackedHitCount.objects.values_list("reason", "count")) == [("DNT", 1)]


def test_the_event_debugger_shows_the_counts_of_its_account_only(client_logged_in, client, account, other_account):
    account_update(account=account, honour_gpc=True)
    account_update(account=other_account, honour_gpc=True)
    for _ in range(3):
        post(client, account, HTTP_SEC_GPC="1")
    client.post(f"/collect/{other_account.site_key}", json.dumps(HIT), content_type="text/plain", HTTP_SEC_GPC="1")

    body = client_logged_in.get("/settings/account/event-debugger/").content.decode()

    row = body[body.index('id="untracked-GPC"') :]
    assert row.split("</tr>")[0].count('<td class="num">3</td>') == 2

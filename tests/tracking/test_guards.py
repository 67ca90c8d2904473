"""tracking/guards.py: the collect endpoint's rate limits and the account's strict origin. A refused hit is a JSON
{code, message} (429 with Retry-After, or 403) and writes nothing."""

import json

import pytest
from django.core.exceptions import ValidationError

from paminga.services import account_update

from .test_collect import counts, impression, post

pytestmark = pytest.mark.django_db


def test_a_flood_from_one_address_gets_429_with_retry_after_and_writes_nothing(client, account, settings):
    settings.RATE_LIMIT_COLLECT_PER_ADDRESS = "5/60"
    for n in range(5):
        assert post(client, account, impression(hit_id=f"imp-{n:07d}")).status_code == 200
    before = counts()

    # when
    responses = [post(client, account, impression(hit_id=f"flood-{n:05d}"), origin=None) for n in range(20)]

    # then
    assert {r.status_code for r in responses} == {429}
    assert responses[0].json()["code"] == "RATE_LIMITED"
    assert responses[0].json()["message"].startswith("Too many hits from this address")
    assert 1 <= int(responses[0]["Retry-After"]) <= 60
    assert counts() == before


def test_the_address_limit_counts_unknown_site_keys_too(client, account, settings):
    settings.RATE_LIMIT_COLLECT_PER_ADDRESS = "3/60"
    statuses = [post(client, account, impression(), site_key=f"nope{n}").status_code for n in range(4)]
    assert statuses == [404, 404, 404, 429]


def test_a_flood_for_one_site_key_gets_429_from_every_address(client, account, settings):
    settings.RATE_LIMIT_COLLECT_PER_SITE_KEY = "3/60"

    statuses = [
        client.post(
            f"/collect/{account.site_key}",
            data=json.dumps(impression(hit_id=f"imp-{n:07d}")),
            content_type="text/plain",
            REMOTE_ADDR=f"198.51.100.{n}",
        ).status_code
        for n in range(5)
    ]

    assert statuses == [200, 200, 200, 429, 429]


def test_the_429_is_readable_by_the_beacon_cross_origin(client, account, settings):
    settings.RATE_LIMIT_COLLECT_PER_ADDRESS = "1/60"
    post(client, account, impression())

    response = post(client, account, impression(hit_id="imp-0000002"))

    assert response.status_code == 429
    assert response["Access-Control-Allow-Origin"] == "https://acme.test"
    assert "Retry-After" in response["Access-Control-Expose-Headers"]


def test_limits_turned_off_with_zero(client, account, settings):
    settings.RATE_LIMIT_COLLECT_PER_ADDRESS = "0"
    settings.RATE_LIMIT_COLLECT_PER_SITE_KEY = "0"
    assert all(post(client, account, impression(hit_id=f"imp-{n:07d}")).status_code == 200 for n in range(30))


# --- strict origin ------------------------------------------------------------------------------------------------


@pytest.fixture
def strict(account):
    return account_update(account=account, strict_origin=True)


def test_strict_origin_refuses_a_hit_with_neither_origin_nor_referer(client, strict):
    before = counts()

    response = post(client, strict, impression(), origin=None)

    assert response.status_code == 403
    assert response.json()["code"] == "ORIGIN_REQUIRED"
    assert counts() == before


def test_strict_origin_refuses_a_referer_on_another_domain(client, strict):
    response = client.post(
        f"/collect/{strict.site_key}",
        data=json.dumps(impression()),
        content_type="text/plain",
        HTTP_REFERER="https://evil.test/",
    )
    assert response.status_code == 403


def test_strict_origin_accepts_a_referer_or_an_origin_on_its_domains(client, strict):
    by_referer = client.post(
        f"/collect/{strict.site_key}",
        data=json.dumps(impression()),
        content_type="text/plain",
        HTTP_REFERER="https://acme.test/x",
    )
    by_origin = post(client, strict, impression(hit_id="imp-0000002"))
    assert (by_referer.status_code, by_origin.status_code) == (200, 200)


def test_without_strict_origin_a_hit_without_headers_is_recorded(client, account):
    assert post(client, account, impression(), origin=None).status_code == 200


def test_strict_origin_needs_a_domain(account):
    account.domains = []
    with pytest.raises(ValidationError) as exc:
        account_update(account=account, strict_origin=True)
    assert "strict_origin" in exc.value.message_dict


def test_the_account_settings_page_shows_and_saves_strict_origin(client_logged_in, account):
    page = client_logged_in.get("/settings/account/").content.decode()
    assert 'name="strict_origin"' in page

    client_logged_in.post(
        "/settings/account/",
        {
            "name": "Acme",
            "domains": "acme.test",
            "time_zone": "UTC",
            "session_timeout_minutes": 30,
            "strict_origin": "on",
        },
    )

    account.refresh_from_db()
    assert account.strict_origin is True

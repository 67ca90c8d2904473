import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_account_settings_save_domains_and_time_zone(client_logged_in, account):
    response = client_logged_in.post(
        reverse("account_settings"),
        {
            "name": "Acme Corp",
            "domains": "https://www.acme.test/\nshop.acme.test, *.acme.test",
            "time_zone": "Europe/Berlin",
            "session_timeout_minutes": 45,
        },
    )

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.name == "Acme Corp"
    assert account.domains == ["www.acme.test", "shop.acme.test", "*.acme.test"]
    assert (account.time_zone, account.session_timeout_minutes) == ("Europe/Berlin", 45)


def test_account_settings_reject_bad_values(client_logged_in, account):
    response = client_logged_in.post(
        reverse("account_settings"),
        {
            "name": "Acme",
            "domains": "not a domain",
            "time_zone": "Mars/Olympus",
            "session_timeout_minutes": 0,
        },
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "is not a host name" in body
    assert "Select a valid choice" in body
    account.refresh_from_db()
    assert account.domains == ["acme.test"] and account.time_zone == "UTC"


def test_healthz(client):
    assert client.get("/healthz").content == b"ok"

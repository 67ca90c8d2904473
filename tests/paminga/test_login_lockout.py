"""Logins lock out after repeated failures, per email and per address (django-axes, counted in the cache)."""

import pytest

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(settings):
    settings.AXES_FAILURE_LIMIT = 5
    user = UserFactory(username="ada@acme.test", email="ada@acme.test")
    user.set_password("right-password-1")
    user.save()
    return user


def _login(client, password, *, username="ada@acme.test", address="203.0.113.7"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_repeated_wrong_passwords_lock_the_email_out_even_for_the_right_password(client, ada):
    # given: the fifth failure locks out (and says so)
    for _ in range(4):
        assert _login(client, "wrong").status_code == 200
    assert _login(client, "wrong").status_code == 429

    # when
    response = _login(client, "right-password-1")

    # then
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert "Too many failed logins for this email or from this network" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_lockout_holds_from_another_address_for_that_email(client, ada):
    for i in range(5):
        _login(client, "wrong", address=f"198.51.100.{i}")
    assert _login(client, "right-password-1", address="192.0.2.99").status_code == 429


def test_one_address_guessing_many_emails_is_locked_out(client, ada):
    for i in range(5):
        _login(client, "wrong", username=f"user{i}@acme.test")
    # when: the right login, from the address that guessed
    assert _login(client, "right-password-1").status_code == 429
    # then: another address still logs in
    assert _login(client, "right-password-1", address="192.0.2.1").status_code == 302


def test_fewer_failures_than_the_limit_still_log_in(client, ada):
    for _ in range(4):
        _login(client, "wrong")
    response = _login(client, "right-password-1")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(ada.pk)

import hashlib
import json
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from paminga.models import ApiKey, Membership
from paminga.services import api_key_authenticate, api_key_create
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST = reverse("api_keys")
CREATE = reverse("api_key_create")


def ping(client, secret):
    return client.post(
        "/graphql/",
        json.dumps({"query": "{ ping }"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )


def test_create_shows_the_secret_once_and_stores_only_its_hash(client_logged_in, account, user):
    # when
    response = client_logged_in.post(CREATE, {"name": "CRM sync"})

    # then
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r'<code id="api-key-secret">([^<]+)</code>', response.content.decode()).group(1)
    key = ApiKey.objects.get()
    assert (key.account, key.name, key.created_by) == (account, "CRM sync", user)
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(ApiKey.objects.values().get())
    # the key works
    assert ping(Client(), secret).json() == {"data": {"ping": True}}
    # and is never shown again
    listing = client_logged_in.get(LIST).content.decode()
    assert secret not in listing
    assert f"pmg_{key.prefix}_…" in listing and "CRM sync" in listing


def test_the_list_shows_prefix_last_use_and_revoked_keys_of_the_account_only(client_logged_in, account, other_account):
    used, used_secret = api_key_create(account=account, name="Used key")
    api_key_authenticate(secret=used_secret)
    revoked, _ = api_key_create(account=account, name="Old key")
    revoked.revoked_at = timezone.now()
    revoked.save()
    never, _ = api_key_create(account=account, name="Fresh key")
    api_key_create(account=other_account, name="Globex key")

    body = client_logged_in.get(LIST).content.decode()

    assert all(f"pmg_{k.prefix}_…" in body for k in (used, revoked, never))
    used.refresh_from_db()
    assert used.last_used_at.strftime("%Y-%m-%d %H:%M") in body
    assert "Never" in body and "Revoked" in body and "Active" in body
    assert "Globex key" not in body


def test_a_blank_name_is_refused(client_logged_in):
    response = client_logged_in.post(CREATE, {"name": "  "})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert ApiKey.objects.count() == 0


def test_names_are_escaped(client_logged_in, account):
    api_key_create(account=account, name="<script>alert(1)</script>")

    body = client_logged_in.get(LIST).content.decode()

    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_revoke_asks_for_confirmation_then_the_key_stops_working(client_logged_in, account):
    key, secret = api_key_create(account=account, name="CRM sync")
    url = reverse("api_key_revoke", args=[key.pk])

    confirmation = client_logged_in.get(url)
    assert confirmation.status_code == 200
    assert "401 UNAUTHENTICATED" in confirmation.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None and ping(Client(), secret).status_code == 200

    response = client_logged_in.post(url)

    assert response.status_code == 302 and response["Location"] == LIST
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert ping(Client(), secret).status_code == 401


def test_another_accounts_key_cannot_be_revoked(client_logged_in, other_account):
    key, secret = api_key_create(account=other_account, name="Globex key")

    response = client_logged_in.post(reverse("api_key_revoke", args=[key.pk]))

    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_members_can_list_but_not_create_or_revoke(client, account):
    member = UserFactory(username="member@acme.test")
    MembershipFactory(user=member, account=account, role=Membership.Role.MEMBER)
    key, _ = api_key_create(account=account, name="CRM sync")
    client.force_login(member)

    listing = client.get(LIST)
    created = client.post(CREATE, {"name": "Mine"})
    revoked = client.post(reverse("api_key_revoke", args=[key.pk]))

    assert listing.status_code == 200 and "CRM sync" in listing.content.decode()
    assert created.status_code == revoked.status_code == 403
    assert "Only the account&#x27;s owners and admins" in created.content.decode()
    key.refresh_from_db()
    assert (ApiKey.objects.count(), key.revoked_at) == (1, None)


def test_forms_need_a_csrf_token(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post(CREATE, {"name": "CRM sync"})

    assert response.status_code == 403
    assert ApiKey.objects.count() == 0


def test_login_required(client):
    response = client.get(LIST)

    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_navigation_links_to_the_page(client_logged_in):
    body = client_logged_in.get(LIST).content.decode()

    assert f'<a href="{LIST}" aria-current="page">API Keys</a>' in body

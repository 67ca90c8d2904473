import json
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from paminga.graphql import schema
from paminga.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db

PING = {"query": "{ ping }"}


def post(client, body, key=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.post("/graphql/", json.dumps(body), content_type="application/json", **headers, **extra)


def test_valid_key_is_accepted(client, account):
    _, secret = api_key_create(account=account, name="k")

    response = post(client, PING, secret)

    assert response.status_code == 200
    assert response.json() == {"data": {"ping": True}}


@pytest.mark.parametrize("header", [None, "Bearer pmg_nope_nope", "Basic abc", "Bearer ", "Token x"])
def test_missing_or_wrong_key_is_401_unauthenticated(client, account, header):
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}

    response = client.post("/graphql/", json.dumps(PING), content_type="application/json", **extra)

    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_revoked_key_is_401(client, account):
    api_key, secret = api_key_create(account=account, name="k")
    api_key_revoke(api_key=api_key)

    response = post(client, PING, secret)

    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_logged_in_user_needs_csrf_token(user, account):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    assert post(client, PING).status_code == 403

    client.get("/settings/account/")
    token = client.cookies["csrftoken"].value
    response = post(client, PING, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200 and response.json() == {"data": {"ping": True}}


def test_malformed_body_is_400_not_500(client, account):
    _, secret = api_key_create(account=account, name="k")

    response = client.post(
        "/graphql/", "{not json", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )

    assert response.status_code == 400
    assert "errors" in response.json()


def test_checked_in_schema_matches_the_code():
    printed = str(schema).strip()
    checked_in = (Path(settings.BASE_DIR) / "schema.graphql").read_text().strip()

    assert printed == checked_in, "schema.graphql is stale: run `python manage.py graphql_schema --out schema.graphql`"

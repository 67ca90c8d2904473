"""The /graphql/ endpoint itself: malformed requests are 400s with a code, GraphiQL is served to people only."""

import json
import re

import pytest

from tests.factories import CustomEventFactory
from tracking.models import EventRecord

from .utils import error_of

pytestmark = pytest.mark.django_db


def post_raw(client, secret, body: str):
    return client.post("/graphql/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")


@pytest.mark.parametrize(
    "body",
    [
        '{"query": "{ ping }", "variables": {"x": "\\ud800"}}',  # an unpaired surrogate
        '{"query": "{ ping }", "variables": ' + "[" * 5000 + "]" * 5000 + "}",  # nested past the decoder's depth
        '{"query": "{ ping }", "variables": [1, 2]}',
        '{"query": 42}',
        '{"query": "{ ping }", "operationName": {"a": 1}}',
        '{"query": "mutation { triggerCustomEvent(input: {slug: \\"a\\", email: \\"\\\\ud800\\"}) }"}',
        '{"query": "{ ping " }',
        '{"query": "{ nope }"}',
        "[]",
        "not json",
    ],
)
def test_malformed_requests_are_400_with_a_code(client, api_secret, body):
    response = post_raw(client, api_secret, body)

    assert response.status_code == 400
    assert error_of(response.json())["code"] == "INVALID_INPUT"


def test_an_emoji_sent_as_an_escaped_surrogate_pair_is_fine(client, api_secret, account):
    CustomEventFactory(account=account, slug="liked")
    body = json.dumps(
        {
            "query": 'mutation($m: JSON) { triggerCustomEvent(input: {slug: "liked", email: "a@b.co", metadata: $m}) }',
            "variables": {"m": {"reaction": "😀"}},
        }
    )
    assert "\\ud83d\\ude00" in body  # json.dumps escapes it as a pair

    response = post_raw(client, api_secret, body)

    assert response.json() == {"data": {"triggerCustomEvent": True}}
    assert EventRecord.objects.get().metadata == {"reaction": "😀"}


def test_a_huge_document_is_refused_before_parsing(client, api_secret):
    query = "{ " + " ".join(f"a{n}: ping" for n in range(30_000)) + " }"

    response = post_raw(client, api_secret, json.dumps({"query": query}))

    assert response.status_code == 400
    assert "Document contains more than 20000 tokens" in response.json()["errors"][0]["message"]


def test_mutations_are_refused_over_get(client, api_secret, account):
    CustomEventFactory(account=account, slug="x")

    response = client.get(
        "/graphql/",
        {"query": 'mutation { triggerCustomEvent(input: {slug: "x", email: "a@b.co"}) }'},
        HTTP_AUTHORIZATION=f"Bearer {api_secret}",
    )

    assert response.status_code == 405
    assert EventRecord.objects.count() == 0


def test_queries_work_over_get_with_a_key(client, api_secret):
    response = client.get("/graphql/", {"query": "{ ping }"}, HTTP_AUTHORIZATION=f"Bearer {api_secret}")

    assert response.json() == {"data": {"ping": True}}


def test_a_repeated_document_gives_the_same_answer(gql, account):
    # Parsed documents are reused between requests: the variables must still be each request's own.
    CustomEventFactory(account=account, slug="a", name="A")
    CustomEventFactory(account=account, slug="b", name="B")
    query = "query($slug: String!) { custom_event(slug: $slug) { name } }"

    assert gql(query, {"slug": "a"}) == {"data": {"custom_event": {"name": "A"}}}
    assert gql(query, {"slug": "b"}) == {"data": {"custom_event": {"name": "B"}}}
    assert error_of(gql("query($slug: String!) { custom_event(slug: $slug) { nope } }", {"slug": "a"}))["code"] == (
        "INVALID_INPUT"
    )


# --- GraphiQL ----------------------------------------------------------------------------------------------------


def test_graphiql_is_served_to_a_logged_in_user_from_our_static_files(client_logged_in):
    response = client_logged_in.get("/graphql/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    html = response.content.decode()
    assert "vendor/graphiql/graphiql.min.js" in html and "js/graphiql-init.js" in html
    # No asset from another host: every src/href is a path on this server.
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(url.startswith("/") or url == "data:," for url in assets), assets
    assert "Acme" in html  # the account it acts for


def test_graphiql_sends_people_who_are_not_logged_in_to_the_login_page(client):
    response = client.get("/graphql/", HTTP_ACCEPT="text/html")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/graphql/"


def test_programs_with_a_key_get_json_not_graphiql(client, api_secret):
    response = client.get("/graphql/?query={ping}", HTTP_ACCEPT="text/html", HTTP_AUTHORIZATION=f"Bearer {api_secret}")

    assert response["Content-Type"] == "application/json"
    assert response.json() == {"data": {"ping": True}}


def test_answers_to_programs_set_no_cookie(gql):
    response = gql.post("{ ping }")

    assert response.json() == {"data": {"ping": True}}
    assert response.cookies == {} and "Cookie" not in response.get("Vary", "")


def test_a_verified_key_is_not_looked_up_again_and_revoking_it_takes_effect_at_once(client, account):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from paminga.services import api_key_create, api_key_revoke

    api_key, secret = api_key_create(account=account, name="k")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert client.get("/graphql/", {"query": "{ ping }"}, **headers).status_code == 200

    with CaptureQueriesContext(connection) as queries:
        assert client.get("/graphql/", {"query": "{ ping }"}, **headers).json() == {"data": {"ping": True}}
    assert len(queries) == 0

    api_key_revoke(api_key=api_key)
    response = client.get("/graphql/", {"query": "{ ping }"}, **headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_body_over_the_upload_limit_is_413(client, api_secret, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = post_raw(client, api_secret, json.dumps({"query": "{ ping }", "variables": {"x": "a" * 2000}}))

    assert response.status_code == 413
    assert error_of(response.json())["code"] == "INVALID_INPUT"

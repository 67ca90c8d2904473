"""Cost limits, rate limits and failure answers of /graphql/: a refusal is a coded GraphQL error (or a coded JSON
429/503), given before anything executes, with nothing written."""

from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from graphql import get_introspection_query

from paminga.graphql import schema
from paminga.graphql_limits import FIELD_COSTS
from paminga.models import ApiKey
from tests.automations.services import require_services
from tests.factories import CustomEventFactory
from tracking.models import EventRecord

from .utils import error_of

pytestmark = pytest.mark.django_db

REPORT = "custom_events_report { all_events { fires } }"


@pytest.fixture
def event(account):
    return CustomEventFactory(account=account, slug="requested-demo")


def _refused_before_running(gql, query: str) -> dict:
    with mock.patch("automations.reports.selectors.report_scope") as scope, CaptureQueriesContext(connection) as sql:
        response = gql.post(query)
    assert response.status_code == 400, response.content
    assert not scope.called
    # Only the API key's check may touch the database (it is cached after the first request).
    assert all("paminga_apikey" in q["sql"] for q in sql.captured_queries), sql.captured_queries
    return error_of(response.json())


def test_many_aliases_of_a_report_are_refused_before_any_runs(gql):
    aliases = " ".join(f"r{n}: {REPORT}" for n in range(6))

    error = _refused_before_running(gql, f"{{ {aliases} }}")

    assert error["code"] == "QUERY_TOO_COMPLEX"


def test_the_budget_allows_a_few_reports_in_one_request(gql):
    aliases = " ".join(f"r{n}: {REPORT}" for n in range(5))
    answer = gql(f"{{ {aliases} }}")
    assert "errors" not in answer
    assert answer["data"]["r4"]["all_events"]["fires"] == 0


def test_many_aliased_fields_of_one_event_report_are_refused(gql, event):
    fields = " ".join(f"b{n}: breakdown(dimension: PAGE) {{ value }}" for n in range(30))

    error = _refused_before_running(gql, f'{{ custom_event_report(slug: "requested-demo") {{ {fields} }} }}')

    assert error["code"] == "QUERY_TOO_COMPLEX"
    assert (
        "estimated cost"
        in gql.post(f'{{ custom_event_report(slug: "x") {{ {fields} }} }}').json()["errors"][0]["message"]
    )


def test_fragments_spread_many_times_are_counted_in_full(gql):
    # 2 x 2 x 2 reports through nested fragments: 8 reports, over the budget, in a short document.
    query = f"""
      query {{ ...A ...A }}
      fragment A on Query {{ ...B ...B }}
      fragment B on Query {{ ...C ...C }}
      fragment C on Query {{ {REPORT} }}
    """
    error = _refused_before_running(gql, query)
    assert error["code"] == "QUERY_TOO_COMPLEX"


def test_too_many_aliases_are_refused(gql, settings):
    settings.GRAPHQL_MAX_ALIASES = 10
    error = _refused_before_running(gql, "{ " + " ".join(f"p{n}: ping" for n in range(11)) + " }")
    assert error["code"] == "QUERY_TOO_COMPLEX"
    assert (
        "11 aliases"
        in gql.post("{ " + " ".join(f"q{n}: ping" for n in range(11)) + " }").json()["errors"][0]["message"]
    )


def test_deep_nesting_is_refused(gql, settings):
    settings.GRAPHQL_MAX_DEPTH = 3
    query = '{ custom_event_report(slug: "requested-demo") { figures { daily { day } } } }'
    error = _refused_before_running(gql, query)
    assert error["code"] == "QUERY_TOO_COMPLEX"
    assert "nests 4 levels deep" in gql.post(query.replace("{ day }", "{ fires }")).json()["errors"][0]["message"]


def test_graphiql_introspection_fits_the_default_limits(gql):
    answer = gql(get_introspection_query(descriptions=True))
    assert "errors" not in answer
    assert answer["data"]["__schema"]["queryType"]["name"] == "Query"


def test_mutations_keep_their_own_limits(gql, event):
    # 100 aliased triggers are allowed (one root field each, cost 1 each), as the API documentation says.
    fields = " ".join(
        f'a{n}: triggerCustomEvent(input: {{slug: "requested-demo", email: "r{n}@example.com"}})' for n in range(100)
    )
    answer = gql(f"mutation {{ {fields} }}")
    assert "errors" not in answer
    assert EventRecord.objects.count() == 100


def test_field_costs_name_fields_of_the_schema():
    for coordinate in FIELD_COSTS:
        type_name, field = coordinate.split(".")
        assert field in schema.graphql_schema.get_type(type_name).fields, coordinate


# --- API keys: rate limits ---------------------------------------------------------------------------------------


def test_guessing_api_keys_is_stopped_with_429(client, api_secret, settings):
    settings.RATE_LIMIT_API_FAILURES_PER_ADDRESS = "5/60"
    headers = {"HTTP_AUTHORIZATION": "Bearer pmg_abcdefgh_wrong", "REMOTE_ADDR": "203.0.113.9"}

    statuses = [
        client.post("/graphql/", '{"query": "{ ping }"}', content_type="application/json", **headers).status_code
        for _ in range(7)
    ]

    assert statuses == [401] * 5 + [429] * 2
    # then: the right key is refused from that address too, until the window ends...
    right = {"HTTP_AUTHORIZATION": f"Bearer {api_secret}", "REMOTE_ADDR": "203.0.113.9"}
    response = client.post("/graphql/", '{"query": "{ ping }"}', content_type="application/json", **right)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    # ...and accepted from another address
    right["REMOTE_ADDR"] = "198.51.100.1"
    assert (
        client.post("/graphql/", '{"query": "{ ping }"}', content_type="application/json", **right).status_code == 200
    )


def test_calls_per_key_are_limited(gql, settings):
    settings.RATE_LIMIT_API_CALLS_PER_KEY = "3/60"

    statuses = [gql.post("{ ping }").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    response = gql.post("{ ping }")
    assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert response["Retry-After"]


def test_behind_a_proxy_the_forwarded_address_is_limited(client, settings):
    settings.RATE_LIMIT_API_FAILURES_PER_ADDRESS = "2/60"
    settings.PROXY_COUNT = 1

    def attempt(forwarded):
        return client.post(
            "/graphql/",
            '{"query": "{ ping }"}',
            content_type="application/json",
            HTTP_AUTHORIZATION="Bearer pmg_x_y",
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=forwarded,
        ).status_code

    # A client's own X-Forwarded-For entries (left of the proxy's) do not change the address counted.
    assert [attempt(f"1.1.1.{n}, 203.0.113.5") for n in range(3)] == [401, 401, 429]
    assert attempt("203.0.113.6") == 401


# --- Failures: a coded answer, never a 5xx page -------------------------------------------------------------------


def test_database_down_during_the_key_check_is_a_coded_503(client, api_secret):
    with mock.patch("paminga.graphql_view.api_key_authenticate", side_effect=OperationalError("connection refused")):
        response = client.post(
            "/graphql/",
            '{"query": "{ ping }"}',
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {api_secret}",
        )

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"]
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"


@pytest.mark.parametrize(
    "query",
    [
        'query { custom_event(slug: "a\\u0000b") { slug } }',
        'query { actions(event_slug: "requested-demo\\u0000") { id } }',
        'query { custom_event_report(slug: "\\u0000") { start } }',
        'mutation { update_custom_event(slug: "requested-demo\\u0000", input: {name: "x"}) { slug } }',
        'mutation { delete_custom_event(slug: "\\u0000requested-demo") }',
    ],
)
def test_null_character_in_a_slug_argument_is_invalid_input(gql, event, query, caplog):
    # when
    answer = gql(query)

    # then
    error = error_of(answer)
    assert error["code"] == "INVALID_INPUT"
    assert "null characters" in answer["errors"][0]["message"]
    assert not [r for r in caplog.records if r.exc_info]
    event.refresh_from_db()
    assert event.name != "x"


def test_api_keys_unchanged_by_refusals(client, api_secret, settings):
    settings.RATE_LIMIT_API_FAILURES_PER_ADDRESS = "1/60"
    before = list(ApiKey.objects.values_list("pk", "last_used_at"))
    for _ in range(3):
        client.post(
            "/graphql/", '{"query": "{ ping }"}', content_type="application/json", HTTP_AUTHORIZATION="Bearer pmg_a_b"
        )
    assert list(ApiKey.objects.values_list("pk", "last_used_at")) == before


@pytest.mark.django_db(transaction=True)
def test_a_report_past_the_statement_timeout_is_stopped_with_a_code(client, account, settings, caplog):
    # statement_timeout is PostgreSQL's: SQLite has none, and its reports run unbounded (every other report test).
    require_services(postgresql=True)
    from automations.reports import selectors
    from paminga.services import api_key_create

    secret = api_key_create(account=account, name="reports")[1]
    settings.REPORT_STATEMENT_TIMEOUT_MS = 50
    slow = selectors.event_overview

    def event_overview(*, scope):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(1)")
        return slow(scope=scope)

    # when
    with mock.patch.object(selectors, "event_overview", event_overview):
        response = client.post(
            "/graphql/",
            '{"query": "{ custom_events_report { all_events { fires } } }"}',
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )

    # then
    assert response.status_code == 200
    assert error_of(response.json())["code"] == "TIMEOUT"
    assert not [r for r in caplog.records if r.exc_info and r.levelname == "ERROR"]
    # the connection's next transaction runs without the limit
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"

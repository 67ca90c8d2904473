"""Property-based fuzzing of the management and report queries' arguments: slugs, metadata keys and values, ids and
definition fields with null characters, unpaired surrogates, control and astral-plane characters. Whatever is sent,
the answer is a 200 or a 400 with coded errors (never a 5xx, never INTERNAL_ERROR), and a refused mutation changes
nothing. Most telling on PostgreSQL, which refuses a null character as a query parameter."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_events.models import CustomEvent
from tests.factories import CustomEventFactory

pytestmark = pytest.mark.django_db

ALLOWED_CODES = {"UNKNOWN_EVENT", "INVALID_INPUT", "NOT_FOUND"}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

hostile = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "\x00", "fuzz-event\x00", "\x00fuzz-event", "é😀\u202e", "\ud800", "a\udfffb", "x" * 201]),
    st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda a: a + "\ud83d", st.text(max_size=8)),
)
slugs = st.one_of(st.just("fuzz-event"), hostile)

QUERIES = [
    ("query($s: String!) { custom_event(slug: $s) { slug fires } }", lambda v: {"s": v["slug"]}),
    ("query($s: String!) { actions(event_slug: $s) { id } }", lambda v: {"s": v["slug"]}),
    (
        "query($s: String!, $k: String!, $mk: String, $mv: String, $b: ID) { custom_event_report(slug: $s) {"
        " figures { fires } metadata_breakdown(key: $k) { value }"
        " occurrences(metadata_key: $mk, metadata_value: $mv, before_id: $b) { id } } }",
        lambda v: {"s": v["slug"], "k": v["text"], "mk": v["text"], "mv": v["other"], "b": v["other"]},
    ),
    (
        "mutation($s: String!, $n: String, $d: String, $t: String) {"
        " update_custom_event(slug: $s, input: {name: $n, description: $d, slug: $t}) { slug } }",
        lambda v: {"s": v["slug"], "n": v["text"], "d": v["other"], "t": v["other"]},
    ),
    ("mutation($s: String!) { delete_custom_event(slug: $s) }", lambda v: {"s": v["slug"]}),
    (
        "mutation($n: String!, $s: String!, $d: String) {"
        " create_custom_event(input: {name: $n, slug: $s, description: $d}) { slug } }",
        lambda v: {"n": v["text"], "s": v["slug"], "d": v["other"]},
    ),
]


@pytest.fixture
def world(account):
    CustomEventFactory(account=account, slug="fuzz-event", name="Fuzz event")


def _snapshot():
    return list(CustomEvent.objects.order_by("pk").values_list("slug", "name", "description"))


def _check(response) -> dict:
    assert response.status_code in (200, 400), response.content
    answer = response.json()
    for error in answer.get("errors", []):
        assert error["extensions"]["code"] in ALLOWED_CODES, answer
    return answer


@FUZZ
@given(
    which=st.integers(min_value=0, max_value=len(QUERIES) - 1),
    values=st.fixed_dictionaries({"slug": slugs, "text": hostile, "other": hostile}),
)
def test_any_argument_through_variables_is_answered_without_a_server_error(client, api_secret, world, which, values):
    query, variables = QUERIES[which]
    before = _snapshot()

    body = json.dumps({"query": query, "variables": variables(values)})  # surrogates are sent as \\udxxx escapes
    response = client.post(
        "/graphql/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api_secret}"
    )

    answer = _check(response)
    if answer.get("errors") and query.startswith("mutation"):
        assert _snapshot() == before


@FUZZ
@given(which=st.integers(min_value=0, max_value=len(QUERIES) - 1), slug=slugs, text=hostile)
def test_any_argument_written_inline_is_answered_without_a_server_error(client, api_secret, world, which, slug, text):
    query = [
        f"{{ custom_event(slug: {json.dumps(slug)}) {{ slug }} }}",
        f"{{ actions(event_slug: {json.dumps(slug)}) {{ id }} }}",
        f"{{ custom_event_report(slug: {json.dumps(slug)}) {{"
        f" metadata_breakdown(key: {json.dumps(text)}) {{ value }} }} }}",
        f"mutation {{ update_custom_event(slug: {json.dumps(slug)}, input: {{name: {json.dumps(text)}}}) {{ slug }} }}",
        f"mutation {{ delete_custom_event(slug: {json.dumps(slug)}) }}",
        f"mutation {{ create_custom_event(input: {{name: {json.dumps(text)}, slug: {json.dumps(slug)}}}) {{ slug }} }}",
    ][which]
    before = _snapshot()

    response = client.post(
        "/graphql/",
        json.dumps({"query": query}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_secret}",
    )

    answer = _check(response)
    if answer.get("errors") and query.startswith("mutation"):
        assert _snapshot() == before

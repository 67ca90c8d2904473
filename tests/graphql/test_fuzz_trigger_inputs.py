"""Property-based fuzzing of the triggerCustomEvent inputs: whatever a caller sends, the answer is a 200 or a 400
with coded errors (never a 500, never INTERNAL_ERROR), and an event is recorded exactly when the answer says so.

Bounded so the suite stays fast: a few hundred generated requests in all, no deadline, no example database."""

import json
import math

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from custom_events.models import MarketingChannel
from tests.factories import CustomEventFactory, MarketingSourceFactory
from tracking.models import Contact, EventRecord, RecordedKey

pytestmark = pytest.mark.django_db

ALLOWED_CODES = {"UNKNOWN_EVENT", "INVALID_EMAIL", "METADATA_TOO_LARGE", "INVALID_INPUT"}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Strings around every limit, with control characters, null characters and astral-plane text.
boundary_lengths = st.sampled_from([0, 1, 64, 65, 100, 101, 150, 151, 200, 201, 254, 255, 2000, 2001])
texts = st.one_of(
    st.text(max_size=40),
    st.builds(lambda n, c: c * n, boundary_lengths, st.sampled_from(["x", "é", "😀", "\x00", " "])),
    st.sampled_from(["", " ", "\x00", "\t\n", "<script>alert(1)</script>", "' OR 1=1 --", "\\u0000", "é😀\u202e"]),
)
wrong_types = st.one_of(st.integers(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=3), st.just({}))
string_field = st.one_of(texts, texts, texts, wrong_types, st.none())

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=25,
)
big_metadata = st.builds(lambda n: {"blob": "a" * n}, st.integers(min_value=4080, max_value=4100))
metadata = st.one_of(st.dictionaries(texts, json_values, max_size=6), big_metadata, json_values)

slugs = st.one_of(st.sampled_from(["fuzz-event", "fuzz-event", "other-event", "FUZZ-EVENT", "fuzz_event"]), texts)
emails = st.one_of(st.emails(), st.sampled_from(["a@example.com", "A@EXAMPLE.COM", "a@b", "@x.io"]), texts)
channels = st.one_of(st.sampled_from([*MarketingChannel.values, None]), texts)
keys = st.one_of(st.none(), st.sampled_from(["k1", "k2", " k1 "]), texts)
visitor_ids = st.one_of(st.none(), st.sampled_from(["v-1", "v-2"]), texts)

hostile_inputs = st.fixed_dictionaries(
    {"slug": slugs, "email": emails},
    optional={
        "page_url": string_field,
        "utm_source": string_field,
        "utm_medium": string_field,
        "utm_campaign": string_field,
        "utm_term": string_field,
        "utm_content": string_field,
        "marketing_channel": channels,
        "marketing_source": st.one_of(st.sampled_from(["Partner", "PARTNER", "unknown"]), string_field),
        "metadata": metadata,
        "idempotency_key": keys,
        "visitor_id": visitor_ids,
    },
)
# Inputs a well-behaved integration might send, so that the recording path is fuzzed as much as the refusals.
plain = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=60)
plain_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | plain,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(plain, children, max_size=3),
    max_leaves=10,
)
plausible_inputs = st.fixed_dictionaries(
    {"slug": st.sampled_from(["fuzz-event", "other-event"]), "email": st.emails()},
    optional={
        "page_url": plain,
        "utm_source": plain,
        "utm_medium": plain,
        "utm_campaign": plain,
        "utm_term": plain,
        "utm_content": plain,
        "marketing_channel": st.sampled_from(MarketingChannel.values),
        "marketing_source": st.one_of(st.sampled_from(["Partner", "PARTNER", "unknown"]), plain),
        "metadata": st.dictionaries(plain, plain_json, max_size=5),
        "idempotency_key": st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8),
        "visitor_id": st.from_regex(r"\A[A-Za-z0-9-]{1,20}\Z"),
    },
)
trigger_inputs = st.one_of(plausible_inputs, hostile_inputs)

TRIGGER = "mutation($input: TriggerCustomEventInput!) { triggerCustomEvent(input: $input) }"
BATCH = "mutation($inputs: [TriggerCustomEventInput!]!) { triggerCustomEvents(inputs: $inputs) { ok error { code } } }"


@pytest.fixture
def world(account):
    CustomEventFactory(account=account, slug="fuzz-event", counts_as_conversion=True)
    CustomEventFactory(account=account, slug="other-event")
    MarketingSourceFactory(account=account, name="Partner")


def _post_raw(client, secret, body: str):
    return client.post("/graphql/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")


def _encode(value) -> str:
    # allow_nan: Python's decoder on the server accepts NaN/Infinity, so they are worth sending.
    return json.dumps(value, allow_nan=True)


def _check_codes(answer: dict) -> None:
    for error in answer.get("errors", []):
        assert error["extensions"]["code"] in ALLOWED_CODES, answer
        assert error["message"], answer


def _is_replay(fields) -> bool:
    key = fields.get("idempotency_key")
    if not isinstance(key, str) or "\x00" in key:  # such a key is refused, and PostgreSQL cannot even search for it
        return False
    return RecordedKey.objects.filter(key="api:" + key.strip()).exists()


@FUZZ
@given(fields=trigger_inputs)
def test_any_input_through_variables_is_answered_without_a_server_error(client, api_secret, world, fields):
    before = (EventRecord.objects.count(), Contact.objects.count())
    replay = _is_replay(fields)

    response = _post_raw(client, api_secret, _encode({"query": TRIGGER, "variables": {"input": fields}}))

    assert response.status_code in (200, 400), response.content
    answer = response.json()
    _check_codes(answer)
    if answer.get("data") and answer["data"].get("triggerCustomEvent") is True:
        event("recorded")
        assert EventRecord.objects.count() == before[0] + (0 if replay else 1)
    else:
        event(answer["errors"][0]["extensions"]["code"])
        assert answer.get("errors"), answer
        assert (EventRecord.objects.count(), Contact.objects.count()) == before


def _literal(value) -> str:
    """A Python value as a GraphQL input literal (object keys must be GraphQL names)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "1e999"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return "{" + ", ".join(f"{k}: {_literal(v)}" for k, v in value.items()) + "}"


graphql_names = st.from_regex(r"\A[_A-Za-z][_0-9A-Za-z]{0,12}\Z")
literal_metadata = st.dictionaries(
    graphql_names,
    st.recursive(
        json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(graphql_names, c, max_size=3), max_leaves=15
    ),
    max_size=5,
)
literal_inputs = st.fixed_dictionaries(
    {"slug": st.one_of(st.just("fuzz-event"), slugs), "email": st.one_of(st.emails(), emails)},
    optional={
        "page_url": texts,
        "utm_campaign": texts,
        "marketing_source": texts,
        "metadata": literal_metadata,
        "idempotency_key": st.one_of(st.sampled_from(["k1", "k2", " k1 "]), texts),
    },
)


@settings(FUZZ, max_examples=75)
@given(fields=literal_inputs, channel=st.one_of(st.none(), st.sampled_from(MarketingChannel.values)))
def test_any_input_written_inline_is_answered_without_a_server_error(client, api_secret, world, fields, channel):
    before = (EventRecord.objects.count(), Contact.objects.count())
    replay = _is_replay(fields)
    inline = ", ".join(f"{name}: {_literal(value)}" for name, value in fields.items())
    if channel:
        inline += f", marketing_channel: {channel}"

    response = _post_raw(
        client, api_secret, _encode({"query": f"mutation {{ triggerCustomEvent(input: {{{inline}}}) }}"})
    )

    assert response.status_code in (200, 400), response.content
    answer = response.json()
    _check_codes(answer)
    if response.status_code == 200 and answer["data"] and answer["data"]["triggerCustomEvent"] is True:
        event("recorded")
        assert EventRecord.objects.count() == before[0] + (0 if replay else 1)
    else:
        assert (EventRecord.objects.count(), Contact.objects.count()) == before


@settings(FUZZ, max_examples=40)
@given(inputs=st.lists(trigger_inputs, max_size=4))
def test_any_batch_records_exactly_the_items_it_says_it_recorded(client, api_secret, world, inputs):
    before = EventRecord.objects.count()
    # Items that repeat a key already recorded (before or earlier in the batch) record nothing new.
    seen = set(RecordedKey.objects.values_list("key", flat=True))

    response = _post_raw(client, api_secret, _encode({"query": BATCH, "variables": {"inputs": inputs}}))

    assert response.status_code in (200, 400), response.content
    answer = response.json()
    _check_codes(answer)
    if response.status_code == 400:
        assert EventRecord.objects.count() == before
        return
    expected = 0
    for item, result in zip(inputs, answer["data"]["triggerCustomEvents"], strict=True):
        _check_codes({"errors": [{"extensions": result["error"], "message": "x"}]} if result["error"] else {})
        if result["ok"]:
            key = item.get("idempotency_key")
            stored = "api:" + key.strip() if isinstance(key, str) else None
            expected += 0 if stored in seen else 1
            if stored:
                seen.add(stored)
    assert EventRecord.objects.count() == before + expected


raw_bodies = st.one_of(
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.text(max_size=200),
    json_values.map(_encode),
    st.fixed_dictionaries(
        {},
        optional={
            "query": st.one_of(st.text(max_size=80), json_values, st.just("{ ping }"), st.just(TRIGGER)),
            "variables": json_values,
            "operationName": json_values,
        },
    ).map(_encode),
)


@settings(FUZZ, max_examples=75)
@given(body=raw_bodies)
def test_any_request_body_is_answered_without_a_server_error(client, api_secret, world, body):
    before = EventRecord.objects.count()

    response = _post_raw(client, api_secret, body)

    assert response.status_code in (200, 400), response.content
    answer = response.json()
    if "errors" in answer:
        assert all(e["extensions"]["code"] in ALLOWED_CODES for e in answer["errors"]), answer
    assert EventRecord.objects.count() == before

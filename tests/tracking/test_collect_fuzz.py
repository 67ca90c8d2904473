"""Whatever a client sends, the collect endpoint answers with a status and JSON, never a 500."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import CustomEventFactory

pytestmark = pytest.mark.django_db

# Text as browsers and scripts can produce it: NUL characters and lone surrogates included.
text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=60)
json_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | text
json_value = st.recursive(
    json_scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=12
)
hit_id = st.sampled_from(["hit-0000001", "hit-0000002"]) | st.from_regex(r"[A-Za-z0-9_-]{8,12}", fullmatch=True) | text
hit = st.fixed_dictionaries(
    {"type": st.sampled_from(["impression", "event", "identify"]) | json_value, "id": hit_id, "visitor": hit_id},
    optional={
        "url": st.sampled_from(["https://acme.test/", "http://[::1", "https://acme.test:99999/"]) | text | json_value,
        "title": text | json_value,
        "referrer": st.sampled_from(["https://www.google.com/", "http://[bad"]) | text,
        "slug": st.sampled_from(["known", "unknown"]) | text | json_value,
        "metadata": json_value,
        "metadata_dropped": json_value,
        "email": st.sampled_from(["ada@acme.test"]) | text | json_value,
        "contact_token": text | json_value,
        "age": json_value,
        "retry": json_value,
    },
)


@pytest.fixture
def known_event(account):
    return CustomEventFactory(account=account, slug="known")


def _encode(value) -> bytes:
    # NaN and Infinity, NUL characters and lone surrogates (escaped): what a careless client could send.
    return json.dumps(value, allow_nan=True, ensure_ascii=True).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=hit.map(_encode) | st.binary(max_size=200) | json_value.map(_encode))
def test_any_body_gets_an_answer_never_a_500(client, account, known_event, body):
    response = client.post(f"/collect/{account.site_key}", body, content_type="text/plain")

    assert response.status_code in (200, 400, 413, 422), response.content
    data = response.json()
    assert ("status" in data) if response.status_code == 200 else (data["code"] and data["message"])

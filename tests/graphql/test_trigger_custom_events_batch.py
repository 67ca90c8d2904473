import pytest

from tests.factories import CustomEventFactory
from tracking.models import Contact, EventRecord

from .utils import error_of

pytestmark = pytest.mark.django_db

BATCH = """mutation($inputs: [TriggerCustomEventInput!]!) {
  triggerCustomEvents(inputs: $inputs) { index ok error { code message field } }
}"""


@pytest.fixture
def event(account):
    return CustomEventFactory(account=account, slug="downloaded-whitepaper")


def item(n, **fields):
    return {"slug": "downloaded-whitepaper", "email": f"reader{n}@example.com", **fields}


def test_each_input_gets_its_own_result_in_order(gql, event):
    inputs = [item(0), item(1, slug="nope"), item(2, email="broken"), item(3, metadata={"x": "a" * 5000}), item(4)]

    answer = gql(BATCH, {"inputs": inputs})

    results = answer["data"]["triggerCustomEvents"]
    assert [(r["index"], r["ok"]) for r in results] == [(0, True), (1, False), (2, False), (3, False), (4, True)]
    assert [r["error"] and (r["error"]["code"], r["error"]["field"]) for r in results] == [
        None,
        ("UNKNOWN_EVENT", "slug"),
        ("INVALID_EMAIL", "email"),
        ("METADATA_TOO_LARGE", "metadata"),
        None,
    ]
    assert results[1]["error"]["message"].startswith("No custom event with the slug “nope”")
    # Refused inputs left nothing behind; the others are recorded.
    assert sorted(EventRecord.objects.values_list("contact__email", flat=True)) == [
        "reader0@example.com",
        "reader4@example.com",
    ]
    assert Contact.objects.count() == 2


def test_a_hundred_inputs_are_recorded(gql, event):
    answer = gql(BATCH, {"inputs": [item(n) for n in range(100)]})

    assert all(r["ok"] for r in answer["data"]["triggerCustomEvents"])
    assert EventRecord.objects.count() == 100


def test_more_than_a_hundred_inputs_are_refused_and_nothing_is_recorded(gql, event):
    answer = gql(BATCH, {"inputs": [item(n) for n in range(101)]})

    assert answer["data"] is None
    assert error_of(answer) == {"code": "INVALID_INPUT", "field": "inputs"}
    assert EventRecord.objects.count() == 0


def test_an_empty_batch_answers_an_empty_list(gql, event):
    assert gql(BATCH, {"inputs": []}) == {"data": {"triggerCustomEvents": []}}


def test_an_idempotency_key_repeated_inside_a_batch_records_once(gql, event):
    answer = gql(BATCH, {"inputs": [item(0, idempotency_key="dl-1"), item(0, idempotency_key="dl-1")]})

    assert [r["ok"] for r in answer["data"]["triggerCustomEvents"]] == [True, True]
    assert EventRecord.objects.count() == 1


def test_a_failure_outside_validation_records_nothing_of_the_batch(gql, event, monkeypatch):
    from tracking import hooks

    def fails(**kwargs):
        # After the batch's contacts and events are written, in its transaction.
        assert EventRecord.objects.count() == 5 and Contact.objects.count() == 5
        raise RuntimeError("disk full")

    monkeypatch.setattr(hooks, "_events_recorded", [fails])

    answer = gql(BATCH, {"inputs": [item(n) for n in range(5)]})

    assert error_of(answer) == {"code": "INTERNAL_ERROR"}
    assert (EventRecord.objects.count(), Contact.objects.count()) == (0, 0)


def test_aliases_cannot_go_around_the_batch_limit(gql, event):
    fields = " ".join(
        f'a{n}: triggerCustomEvent(input: {{slug: "downloaded-whitepaper", email: "r{n}@example.com"}})'
        for n in range(101)
    )

    response = gql.post(f"mutation {{ {fields} }}")

    assert response.status_code == 400
    assert error_of(response.json())["code"] == "INVALID_INPUT"
    assert "at most 100 root fields" in response.json()["errors"][0]["message"]
    assert EventRecord.objects.count() == 0

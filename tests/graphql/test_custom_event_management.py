import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from custom_events.forms import CustomEventForm
from custom_events.models import CustomEvent
from custom_events.services import custom_event_create
from tests.factories import CustomEventFactory, EventRecordFactory
from tracking.models import EventRecord

from .utils import error_of

pytestmark = pytest.mark.django_db

LIST = "{ custom_events { name slug description counts_as_conversion fires conversions created_at updated_at } }"
ONE = "query($slug: String!) { custom_event(slug: $slug) { name slug fires conversions } }"
CREATE = """mutation($input: CreateCustomEventInput!) {
  create_custom_event(input: $input) { name slug description counts_as_conversion fires conversions }
}"""
UPDATE = """mutation($slug: String!, $input: UpdateCustomEventInput!) {
  update_custom_event(slug: $slug, input: $input) { name slug description counts_as_conversion fires }
}"""
DELETE = "mutation($slug: String!) { delete_custom_event(slug: $slug) }"


def test_custom_events_lists_the_events_with_fires_and_conversions(gql, account):
    video = CustomEventFactory(account=account, name="Watched Product Video", slug="watched-product-video")
    demo = CustomEventFactory(account=account, name="Requested Demo", slug="requested-demo")
    EventRecordFactory.create_batch(3, custom_event=video, is_conversion=False)
    EventRecordFactory.create_batch(2, custom_event=demo, is_conversion=True)
    # recorded while the definition did not count as a conversion: history is not rewritten
    EventRecordFactory(custom_event=demo, is_conversion=False)

    answer = gql(LIST)

    rows = [(e["name"], e["slug"], e["fires"], e["conversions"]) for e in answer["data"]["custom_events"]]
    assert rows == [
        ("Requested Demo", "requested-demo", 3, 2),
        ("Watched Product Video", "watched-product-video", 3, 0),
    ]


def _queries_for_list(gql) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert "errors" not in gql(LIST)
    return len(queries)


def test_custom_events_costs_the_same_queries_for_one_or_many_events(gql, account):
    EventRecordFactory(custom_event=CustomEventFactory(account=account))
    gql(LIST)  # the key's first use also records its last use: not part of the comparison
    one = _queries_for_list(gql)
    for _ in range(5):
        EventRecordFactory.create_batch(2, custom_event=CustomEventFactory(account=account))

    assert _queries_for_list(gql) == one == 1  # the events with their counts (the verified key is cached)


def test_custom_event_by_slug(gql, account):
    event = CustomEventFactory(account=account, name="Visited Pricing Page", slug="visited-pricing-page")
    EventRecordFactory.create_batch(2, custom_event=event, is_conversion=True)

    answer = gql(ONE, {"slug": "visited-pricing-page"})

    assert answer == {
        "data": {
            "custom_event": {
                "name": "Visited Pricing Page",
                "slug": "visited-pricing-page",
                "fires": 2,
                "conversions": 2,
            }
        }
    }
    assert gql(ONE, {"slug": "nope"}) == {"data": {"custom_event": None}}


def test_create_custom_event(gql, account):
    answer = gql(
        CREATE,
        {
            "input": {
                "name": "Requested Demo",
                "slug": "requested-demo",
                "description": "Demo form",
                "counts_as_conversion": True,
            }
        },
    )

    assert answer == {
        "data": {
            "create_custom_event": {
                "name": "Requested Demo",
                "slug": "requested-demo",
                "description": "Demo form",
                "counts_as_conversion": True,
                "fires": 0,
                "conversions": 0,
            }
        }
    }
    event = CustomEvent.objects.get(account=account)
    assert (event.name, event.slug, event.description, event.counts_as_conversion) == (
        "Requested Demo",
        "requested-demo",
        "Demo form",
        True,
    )


def test_a_created_event_can_be_fired_at_once(gql, account):
    gql(CREATE, {"input": {"name": "Trial Signup", "slug": "trial-signup"}})

    answer = gql('mutation { triggerCustomEvent(input: {slug: "trial-signup", email: "a@example.com"}) }')

    assert answer == {"data": {"triggerCustomEvent": True}}
    assert EventRecord.objects.get().custom_event.slug == "trial-signup"


def _form_errors(data: dict) -> dict:
    form = CustomEventForm(data)
    form.is_valid()
    return form.errors


INVALID_CREATES = [
    ({"name": "X", "slug": "Has Space"}, "slug"),
    ({"name": "X", "slug": "has_underscore"}, "slug"),
    ({"name": "X", "slug": "Upper"}, "slug"),
    ({"name": "X", "slug": "impression"}, "slug"),
    ({"name": "X", "slug": "form-submission"}, "slug"),
    ({"name": "X", "slug": "x" * 101}, "slug"),
    ({"name": "", "slug": "fine"}, "name"),
    ({"name": "x" * 201, "slug": "fine"}, "name"),
    ({"name": "nul\u0000", "slug": "fine"}, "name"),
    ({"name": "X", "slug": "fine", "description": "d" * 5001}, "description"),
]


@pytest.mark.parametrize(("fields", "field"), INVALID_CREATES)
def test_create_refuses_what_the_settings_page_refuses_with_the_same_message(gql, account, fields, field):
    answer = gql(CREATE, {"input": fields})

    assert answer["data"] is None
    assert error_of(answer) == {"code": "INVALID_INPUT", "field": field}
    assert CustomEvent.objects.count() == 0
    # The settings form says the same thing about the same field.
    form_messages = _form_errors(fields)[field]
    model_message = answer["errors"][0]["message"]
    assert model_message.startswith(f"{field}: ")
    if field == "slug":
        assert model_message == f"slug: {form_messages[0]}"


def test_create_refuses_a_duplicate_slug(gql, account):
    custom_event_create(account=account, name="Demo", slug="requested-demo")

    answer = gql(CREATE, {"input": {"name": "Another", "slug": "requested-demo"}})

    assert error_of(answer) == {"code": "INVALID_INPUT", "field": "slug"}
    assert answer["errors"][0]["message"] == "slug: This slug is already used by another custom event in this account."
    assert CustomEvent.objects.count() == 1


def test_update_changes_only_the_given_fields(gql, account):
    event = CustomEventFactory(account=account, name="Old", slug="old", description="keep me")
    EventRecordFactory(custom_event=event)

    answer = gql(UPDATE, {"slug": "old", "input": {"name": "New name", "counts_as_conversion": True}})

    assert answer == {
        "data": {
            "update_custom_event": {
                "name": "New name",
                "slug": "old",
                "description": "keep me",
                "counts_as_conversion": True,
                "fires": 1,
            }
        }
    }
    event.refresh_from_db()
    assert (event.name, event.slug, event.description, event.counts_as_conversion) == (
        "New name",
        "old",
        "keep me",
        True,
    )


def test_a_renamed_slug_fires_at_once_and_the_old_one_is_unknown(gql, account):
    CustomEventFactory(account=account, slug="old")
    gql('mutation { triggerCustomEvent(input: {slug: "old", email: "a@example.com"}) }')  # caches the definition

    gql(UPDATE, {"slug": "old", "input": {"slug": "new"}})

    new = gql('mutation { triggerCustomEvent(input: {slug: "new", email: "a@example.com"}) }')
    old = gql('mutation { triggerCustomEvent(input: {slug: "old", email: "a@example.com"}) }')
    assert new == {"data": {"triggerCustomEvent": True}}
    assert error_of(old) == {"code": "UNKNOWN_EVENT", "field": "slug"}
    assert EventRecord.objects.count() == 2


def test_update_validates_like_the_settings_page(gql, account):
    CustomEventFactory(account=account, slug="taken")
    event = CustomEventFactory(account=account, name="Mine", slug="mine")

    duplicate = gql(UPDATE, {"slug": "mine", "input": {"slug": "taken"}})
    reserved = gql(UPDATE, {"slug": "mine", "input": {"slug": "impression", "name": ""}})

    assert error_of(duplicate) == {"code": "INVALID_INPUT", "field": "slug"}
    assert error_of(reserved)["code"] == "INVALID_INPUT"
    assert reserved["errors"][0]["message"] == (
        "name: This field cannot be blank.; slug: “impression” is reserved by Paminga and cannot be used."
    )
    event.refresh_from_db()
    assert (event.name, event.slug) == ("Mine", "mine")


def test_update_of_an_unknown_slug_is_unknown_event(gql, account):
    answer = gql(UPDATE, {"slug": "nope", "input": {"name": "X"}})

    assert error_of(answer) == {"code": "UNKNOWN_EVENT", "field": "slug"}


def test_delete_removes_the_event_and_its_records(gql, account, django_capture_on_commit_callbacks):
    event = CustomEventFactory(account=account, slug="gone")
    EventRecordFactory.create_batch(2, custom_event=event)

    with django_capture_on_commit_callbacks(execute=True):
        answer = gql(DELETE, {"slug": "gone"})

    assert answer == {"data": {"delete_custom_event": True}}
    assert (CustomEvent.objects.count(), EventRecord.objects.count()) == (0, 0)
    fired = gql('mutation { triggerCustomEvent(input: {slug: "gone", email: "a@example.com"}) }')
    assert error_of(fired) == {"code": "UNKNOWN_EVENT", "field": "slug"}


def test_delete_of_an_unknown_slug_is_unknown_event(gql, account):
    CustomEventFactory(account=account, slug="stays")

    answer = gql(DELETE, {"slug": "nope"})

    assert answer["data"] is None
    assert error_of(answer) == {"code": "UNKNOWN_EVENT", "field": "slug"}
    assert CustomEvent.objects.count() == 1


def test_slug_arguments_are_limited(gql, account):
    answer = gql(ONE, {"slug": "x" * 5000})

    assert error_of(answer) == {"code": "INVALID_INPUT", "field": "slug"}


def test_every_type_field_and_argument_has_a_description(gql):
    from paminga.graphql import schema

    missing = []
    for name, graphql_type in schema.graphql_schema.type_map.items():
        if name.startswith("__") or name in {"String", "Boolean", "Int", "Float", "ID"}:
            continue
        if not graphql_type.description:
            missing.append(name)
        for field_name, field in (getattr(graphql_type, "fields", None) or {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for arg_name, arg in (getattr(field, "args", None) or {}).items():
                if not arg.description:
                    missing.append(f"{name}.{field_name}({arg_name})")
    assert missing == []

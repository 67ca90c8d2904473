"""Metadata schemas (custom_events/metadata_schema.py): the one check, and what each mode does on the beacon's path
(the ingester) and the API's (refused at capture, before anything is queued). Run on SQLite and PostgreSQL alike."""

import json

import pytest
from django.core.exceptions import ValidationError

from custom_events.metadata_schema import Violation, metadata_schema_normalize, metadata_violations
from custom_events.services import custom_event_update
from paminga.services import api_key_create
from tests.factories import CustomEventFactory
from tests.graphql.utils import GraphQLClient, error_of
from tracking import capture
from tracking.models import EventRecord, RejectedHit

pytestmark = pytest.mark.django_db

SCHEMA = [
    {"name": "planTier", "type": "string", "required": True, "allowed_values": ["basic", "pro", "enterprise"]},
    {"name": "percentWatched", "type": "number"},
    {"name": "trial", "type": "boolean"},
    {"name": "tags", "type": "string list", "allowed_values": ["a", "b"]},
]
GOOD = {"planTier": "pro", "percentWatched": 87.5, "trial": False, "tags": ["a"], "other": {"any": "thing"}}


def schema() -> list[dict]:
    return metadata_schema_normalize(SCHEMA)


# --- The check ---------------------------------------------------------------------------------------------------


def test_metadata_that_follows_the_schema_has_no_violations_and_undeclared_keys_pass():
    assert metadata_violations(schema(), GOOD) == []
    assert metadata_violations(schema(), {"planTier": "basic"}) == []  # only planTier is required


@pytest.mark.parametrize(
    "metadata, expected",
    [
        ({}, [Violation("planTier", "planTier is required and missing.")]),
        (None, [Violation("planTier", "planTier is required and missing.")]),
        ({"planTier": None}, [Violation("planTier", "planTier is required and missing.")]),
        ({"planTier": "gold"}, [Violation("planTier", "planTier is “gold”, not one of basic, pro, enterprise.")]),
        ({"planTier": 3}, [Violation("planTier", "planTier must be a string, not 3.")]),
        (
            {"planTier": "pro", "percentWatched": "87"},
            [Violation("percentWatched", "percentWatched must be a number, not “87”.")],
        ),
        (
            {"planTier": "pro", "percentWatched": True},
            [Violation("percentWatched", "percentWatched must be a number, not True.")],
        ),
        ({"planTier": "pro", "trial": "yes"}, [Violation("trial", "trial must be a boolean, not “yes”.")]),
        ({"planTier": "pro", "trial": 0}, [Violation("trial", "trial must be a boolean, not 0.")]),
        ({"planTier": "pro", "tags": "a"}, [Violation("tags", "tags must be a string list, not “a”.")]),
        ({"planTier": "pro", "tags": ["a", 1]}, [Violation("tags", "tags must be a string list, not ['a', 1].")]),
        ({"planTier": "pro", "tags": ["a", "c"]}, [Violation("tags", "tags is “c”, not one of a, b.")]),
    ],
)
def test_each_type_required_and_allowed_values(metadata, expected):
    assert metadata_violations(schema(), metadata) == expected


def test_every_violation_is_listed_in_the_schemas_order():
    violations = metadata_violations(schema(), {"trial": "no", "percentWatched": []})

    assert [v.field for v in violations] == ["metadata.planTier", "metadata.percentWatched", "metadata.trial"]


def test_the_stored_form_has_every_key():
    assert schema()[1] == {"name": "percentWatched", "type": "number", "required": False, "allowed_values": []}


@pytest.mark.parametrize(
    "bad",
    [
        "planTier",
        [{"name": "x"}],
        [{"name": "x", "type": "integer"}],
        [{"name": "", "type": "string"}],
        [{"name": "x", "type": "string"}, {"name": "x", "type": "number"}],
        [{"name": "x", "type": "number", "allowed_values": ["1"]}],
        [{"name": "x", "type": "string", "required": "yes"}],
        [{"name": "x", "type": "string", "allowed_values": [1]}],
        [{"name": "x", "type": "string", "color": "red"}],
        [{"name": f"p{i}", "type": "string"} for i in range(51)],
    ],
)
def test_an_invalid_schema_is_refused(bad):
    with pytest.raises(ValidationError):
        metadata_schema_normalize(bad)


# --- The beacon's path -------------------------------------------------------------------------------------------


@pytest.fixture
def event(account):
    event = CustomEventFactory(account=account, slug="watched-video")
    return custom_event_update(custom_event=event, metadata_schema=SCHEMA, metadata_schema_mode="warn")


def beacon(client, account, metadata, n: int = 1):
    body = {"type": "event", "id": f"evt-{n:07d}", "visitor": "visitor-0001", "slug": "watched-video"}
    if metadata is not None:
        body["metadata"] = metadata
    response = client.post(f"/collect/{account.site_key}", json.dumps(body), content_type="text/plain")
    assert response.status_code == 200, response.content
    return response.json()


def notes() -> list:
    return list(RejectedHit.objects.values_list("reason", "slug", "recorded", "message"))


def test_beacon_warn_records_the_metadata_and_lists_each_violation(client, account, event):
    assert beacon(client, account, {"planTier": "gold", "trial": "no"})["status"] == "recorded"

    record = EventRecord.objects.get()
    assert record.metadata == {"planTier": "gold", "trial": "no"}
    assert notes() == [
        (
            "METADATA_SCHEMA",
            "watched-video",
            True,
            "planTier is “gold”, not one of basic, pro, enterprise. trial must be a boolean, not “no”. "
            "The event was recorded with its metadata (warn).",
        )
    ]


def test_beacon_enforce_records_the_event_without_the_metadata(client, account, event):
    custom_event_update(custom_event=event, metadata_schema_mode="enforce")

    assert beacon(client, account, {"percentWatched": 12})["status"] == "recorded"

    record = EventRecord.objects.get()
    assert (record.metadata, record.metadata_dropped, record.metadata_bytes) == (None, False, 0)
    assert notes() == [
        (
            "METADATA_SCHEMA",
            "watched-video",
            True,
            "planTier is required and missing. The event was recorded without its metadata (enforce).",
        )
    ]


def test_beacon_with_good_metadata_or_the_mode_off_writes_no_note(client, account, event):
    beacon(client, account, GOOD, n=1)
    custom_event_update(custom_event=event, metadata_schema_mode="off")
    beacon(client, account, {"planTier": "gold"}, n=2)

    assert EventRecord.objects.count() == 2
    assert notes() == []


def test_metadata_dropped_for_its_size_gets_its_size_note_only(client, account, event):
    custom_event_update(custom_event=event, metadata_schema_mode="enforce")
    body = {"type": "event", "id": "evt-0000001", "visitor": "visitor-0001", "slug": "watched-video"}
    client.post(
        f"/collect/{account.site_key}", json.dumps({**body, "metadata_dropped": 5000}), content_type="text/plain"
    )

    assert [n[0] for n in notes()] == ["METADATA_DROPPED"]


def test_changing_the_schema_never_rewrites_recorded_events(client, account, event):
    beacon(client, account, {"planTier": "gold"})

    custom_event_update(custom_event=event, metadata_schema=[], metadata_schema_mode="enforce")

    assert EventRecord.objects.get().metadata == {"planTier": "gold"}
    assert RejectedHit.objects.count() == 1


# --- The API's path ----------------------------------------------------------------------------------------------


@pytest.fixture
def gql(client, account):
    return GraphQLClient(client, api_key_create(account=account, name="Integration")[1])


TRIGGER = "mutation Trigger($input: TriggerCustomEventInput!) { triggerCustomEvent(input: $input) }"
TRIGGER_MANY = """mutation Many($inputs: [TriggerCustomEventInput!]!) {
  triggerCustomEvents(inputs: $inputs) { index ok error { code field message } }
}"""


def trigger(gql, metadata):
    return gql(TRIGGER, {"input": {"slug": "watched-video", "email": "ada@example.com", "metadata": metadata}})


def test_api_enforce_refuses_with_invalid_metadata_and_the_property_named(gql, account, event):
    custom_event_update(custom_event=event, metadata_schema_mode="enforce")

    answer = trigger(gql, {"planTier": "pro", "tags": ["z"]})

    assert error_of(answer) == {"code": "INVALID_METADATA", "field": "metadata.tags"}
    assert "tags is “z”, not one of a, b." in answer["errors"][0]["message"]
    assert not EventRecord.objects.exists()
    assert not RejectedHit.objects.exists()


def test_api_enforce_refuses_before_anything_is_queued(gql, account, event, monkeypatch):
    custom_event_update(custom_event=event, metadata_schema_mode="enforce")
    queued = []
    monkeypatch.setattr(capture.queue, "queue_enabled", lambda: True)
    monkeypatch.setattr(capture.queue, "queue_append", lambda items: queued.extend(items))

    refused = trigger(gql, {"planTier": "gold"})
    accepted = trigger(gql, {"planTier": "pro"})

    assert error_of(refused) == {"code": "INVALID_METADATA", "field": "metadata.planTier"}
    assert accepted == {"data": {"triggerCustomEvent": True}}
    assert [item.event.metadata for item in queued] == [{"planTier": "pro"}]


def test_api_enforce_in_a_batch_refuses_only_the_item_at_fault(gql, account, event):
    custom_event_update(custom_event=event, metadata_schema_mode="enforce")
    inputs = [
        {"slug": "watched-video", "email": "ada@example.com", "metadata": {"planTier": "pro"}},
        {"slug": "watched-video", "email": "bob@example.com", "metadata": {"planTier": "pro", "trial": 1}},
    ]

    results = gql(TRIGGER_MANY, {"inputs": inputs})["data"]["triggerCustomEvents"]

    assert [(r["ok"], r["error"] and (r["error"]["code"], r["error"]["field"])) for r in results] == [
        (True, None),
        (False, ("INVALID_METADATA", "metadata.trial")),
    ]
    assert EventRecord.objects.get().contact.email == "ada@example.com"


def test_api_warn_records_and_lists_the_violation(gql, account, event):
    assert trigger(gql, {"planTier": "gold"}) == {"data": {"triggerCustomEvent": True}}

    assert EventRecord.objects.get().metadata == {"planTier": "gold"}
    assert [(n[0], n[1]) for n in notes()] == [("METADATA_SCHEMA", "watched-video")]


# --- Management ----------------------------------------------------------------------------------------------------

CREATE = """mutation Create($input: CreateCustomEventInput!) {
  create_custom_event(input: $input) {
    slug metadata_schema_mode metadata_schema { name type required allowed_values }
  }
}"""
UPDATE = """mutation Update($slug: String!, $input: UpdateCustomEventInput!) {
  update_custom_event(slug: $slug, input: $input) { metadata_schema_mode metadata_schema { name type } }
}"""


def test_create_and_update_custom_event_take_a_schema_and_a_mode(gql, account):
    answer = gql(
        CREATE,
        {
            "input": {
                "name": "Demo",
                "slug": "demo",
                "metadata_schema": [{"name": "planTier", "type": "string", "allowed_values": ["pro"]}],
                "metadata_schema_mode": "warn",
            }
        },
    )
    assert answer["data"]["create_custom_event"] == {
        "slug": "demo",
        "metadata_schema_mode": "warn",
        "metadata_schema": [{"name": "planTier", "type": "string", "required": False, "allowed_values": ["pro"]}],
    }

    answer = gql(UPDATE, {"slug": "demo", "input": {"metadata_schema": [{"name": "seats", "type": "number"}]}})
    assert answer["data"]["update_custom_event"] == {
        "metadata_schema_mode": "warn",
        "metadata_schema": [{"name": "seats", "type": "number"}],
    }


@pytest.mark.parametrize(
    "change, field",
    [
        ({"metadata_schema": [{"name": "seats", "type": "integer"}]}, "metadata_schema"),
        ({"metadata_schema": [{"name": "a", "type": "number", "allowed_values": ["1"]}]}, "metadata_schema"),
        ({"metadata_schema_mode": "strict"}, "metadata_schema_mode"),
    ],
)
def test_an_invalid_schema_or_mode_is_invalid_input_on_its_field(gql, account, event, change, field):
    answer = gql(UPDATE, {"slug": "watched-video", "input": change})

    assert error_of(answer) == {"code": "INVALID_INPUT", "field": field}
    event.refresh_from_db()
    assert event.metadata_schema_mode == "warn" and len(event.metadata_schema) == 4


# --- The event's settings page --------------------------------------------------------------------------------------


def schema_rows(rows: list[dict]) -> dict:
    data = {"schema-TOTAL_FORMS": str(len(rows)), "schema-INITIAL_FORMS": "0"}
    for i, row in enumerate(rows):
        data.update({f"schema-{i}-{key}": value for key, value in row.items()})
    return data


def test_the_settings_page_edits_the_schema_and_the_mode(client_logged_in, account, event):
    form = {"name": event.name, "slug": event.slug, "metadata_schema_mode": "enforce"}
    rows = [
        {"name": "planTier", "type": "string", "required": "on", "allowed_values": "basic, pro"},
        {"name": "", "type": "string"},  # an empty row is ignored
        {"name": "seats", "type": "number", "allowed_values": ""},
    ]

    response = client_logged_in.post(f"/settings/account/custom-events/{event.pk}/edit/", {**form, **schema_rows(rows)})

    assert response.status_code == 302
    event.refresh_from_db()
    assert event.metadata_schema_mode == "enforce"
    assert event.metadata_schema == [
        {"name": "planTier", "type": "string", "required": True, "allowed_values": ["basic", "pro"]},
        {"name": "seats", "type": "number", "required": False, "allowed_values": []},
    ]


def test_the_settings_page_shows_a_schema_error_and_saves_nothing(client_logged_in, account, event):
    form = {"name": event.name, "slug": event.slug, "metadata_schema_mode": "warn"}
    rows = [{"name": "seats", "type": "number", "allowed_values": "1, 2"}]

    response = client_logged_in.post(f"/settings/account/custom-events/{event.pk}/edit/", {**form, **schema_rows(rows)})

    assert response.status_code == 200
    assert "only string properties can list allowed values" in response.content.decode()
    event.refresh_from_db()
    assert len(event.metadata_schema) == 4


def test_a_form_posted_without_schema_rows_keeps_the_schema(client_logged_in, account, event):
    form = {"name": "Renamed", "slug": event.slug}

    response = client_logged_in.post(f"/settings/account/custom-events/{event.pk}/edit/", form)

    assert response.status_code == 302
    event.refresh_from_db()
    assert (event.name, event.metadata_schema_mode, len(event.metadata_schema)) == ("Renamed", "warn", 4)


def test_the_events_page_lists_its_violations_only(client_logged_in, client, account, event):
    other = CustomEventFactory(account=account, slug="other-event")
    custom_event_update(custom_event=other, metadata_schema=SCHEMA, metadata_schema_mode="warn")
    beacon(client, account, {"planTier": "gold"})
    body = {"type": "event", "id": "evt-0000009", "visitor": "visitor-0001", "slug": "other-event", "metadata": {}}
    client.post(f"/collect/{account.site_key}", json.dumps(body), content_type="text/plain")

    page = client_logged_in.get(f"/settings/account/custom-events/{event.pk}/edit/").content.decode()

    section = page[page.index('id="schema-violations"') :]
    assert "planTier is “gold”, not one of basic, pro, enterprise." in section
    assert "planTier is required and missing." not in section

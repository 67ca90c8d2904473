"""Action management through GraphQL (/graphql/ with an API key): the same rules and messages as the pages."""

import json

import pytest

from automations.models import Action
from paminga.services import api_key_create
from tests.factories import ActionFactory, CustomEventFactory

pytestmark = pytest.mark.django_db

ACTION_FIELDS = "id event_slug kind position enabled config condition { key op value } summary"


@pytest.fixture
def key(account):
    return api_key_create(account=account, name="automation sync")[1]


@pytest.fixture
def other_key(other_account):
    return api_key_create(account=other_account, name="theirs")[1]


@pytest.fixture
def gql(client):
    def gql(query, key, variables=None, status=200):
        response = client.post(
            "/graphql/",
            json.dumps({"query": query, "variables": variables or {}}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )
        assert response.status_code == status, response.content
        return response.json()

    return gql


def error(body) -> tuple:
    (err,) = body["errors"]
    return err["extensions"]["code"], err["extensions"].get("field"), err["message"]


CREATE = f"""
mutation($input: CreateActionInput!) {{ create_action(input: $input) {{ {ACTION_FIELDS} }} }}
"""
UPDATE = f"""
mutation($input: UpdateActionInput!) {{ update_action(input: $input) {{ {ACTION_FIELDS} }} }}
"""


def test_query_an_events_actions_in_order(gql, key, event):
    ActionFactory(custom_event=event, kind="change_score", config={"delta": 5}, position=1, enabled=False)
    tag = ActionFactory(
        custom_event=event,
        kind="add_tag",
        config={"tag": "vip"},
        position=0,
        condition={"key": "planTier", "op": "equals", "value": "enterprise"},
    )

    body = gql('{ actions(event_slug: "requested-demo") { ' + ACTION_FIELDS + " } }", key)

    assert body["data"]["actions"] == [
        {
            "id": str(tag.pk),
            "event_slug": "requested-demo",
            "kind": "ADD_TAG",
            "position": 0,
            "enabled": True,
            "config": {"tag": "vip"},
            "condition": {"key": "planTier", "op": "EQUALS", "value": "enterprise"},
            "summary": "Add tag “vip”",
        },
        {
            "id": body["data"]["actions"][1]["id"],
            "event_slug": "requested-demo",
            "kind": "CHANGE_SCORE",
            "position": 1,
            "enabled": False,
            "config": {"delta": 5},
            "condition": None,
            "summary": "Change score by +5",
        },
    ]


def test_unknown_event(gql, key, event):
    body = gql('{ actions(event_slug: "nope") { id } }', key)
    assert error(body) == ("UNKNOWN_EVENT", "event_slug", "No custom event with the slug “nope” in this account.")


def test_create_an_action_inline_like_a_person_would_write_it(gql, key, event):
    body = gql(
        """mutation {
          create_action(input: {
            event_slug: "requested-demo", kind: WEBHOOK, config: {url: "https://hooks.acme.test/p"},
            condition: {key: "percentWatched", op: GREATER_THAN, value: 50}
          }) { kind config condition { key op value } enabled position }
        }""",
        key,
    )

    assert body == {
        "data": {
            "create_action": {
                "kind": "WEBHOOK",
                "config": {"url": "https://hooks.acme.test/p", "timeout": 10},
                "condition": {"key": "percentWatched", "op": "GREATER_THAN", "value": 50},
                "enabled": True,
                "position": 0,
            }
        }
    }
    action = Action.objects.get(custom_event=event)
    assert action.condition == {"key": "percentWatched", "op": "greater_than", "value": 50}


@pytest.mark.parametrize(
    "payload, expected",
    [
        (
            {"kind": "CHANGE_SCORE", "config": {"delta": "ten"}},
            ("INVALID_CONFIG", "config.delta", "Points must be a whole number."),
        ),
        ({"kind": "ADD_TAG", "config": {}}, ("INVALID_CONFIG", "config.tag", "Enter tag.")),
        (
            {"kind": "ADD_TAG", "config": {"tag": "x", "colour": "red"}},
            ("INVALID_CONFIG", "config", "Unknown setting colour for “Add a tag” (it takes: tag)."),
        ),
        ({"kind": "ADD_TAG", "config": ["x"]}, ("INVALID_CONFIG", "config", "The configuration must be an object.")),
        (
            {"kind": "NOTIFY_EMAIL", "config": {"to": "not-an-email"}},
            ("INVALID_CONFIG", "config.to", "“not-an-email” is not a valid email address."),
        ),
        (
            {"kind": "ADD_TAG", "config": {"tag": "x"}, "condition": {"key": "seats", "op": "LESS_THAN", "value": "a"}},
            ("INVALID_CONDITION", "condition.value", "“less_than” needs a number."),
        ),
        (
            {"kind": "ADD_TAG", "config": {"tag": "x"}, "condition": {"key": "", "value": "a"}},
            ("INVALID_CONDITION", "condition.key", "Enter the metadata key to test, e.g. planTier."),
        ),
        (
            {"kind": "ADD_TAG", "config": {"tag": "x"}, "event_slug": "missing"},
            ("UNKNOWN_EVENT", "event_slug", "No custom event with the slug “missing” in this account."),
        ),
    ],
)
def test_create_action_errors_store_nothing(gql, key, event, payload, expected):
    body = gql(CREATE, key, {"input": {"event_slug": "requested-demo", **payload}})

    assert body["data"] == {"create_action": None}
    assert error(body) == expected
    assert Action.objects.count() == 0


def test_an_unknown_kind_is_refused_by_the_schema(gql, key, event):
    body = gql(CREATE, key, {"input": {"event_slug": "requested-demo", "kind": "LAUNCH", "config": {}}}, status=400)
    assert body["errors"][0]["message"] == (
        "Variable '$input' got invalid value 'LAUNCH' at 'input.kind'; "
        "Value 'LAUNCH' does not exist in 'ActionKind' enum."
    )
    assert Action.objects.count() == 0


def test_too_many_actions(gql, key, event):
    for i in range(20):
        ActionFactory(custom_event=event, config={"tag": f"t{i}"}, position=i)

    body = gql(CREATE, key, {"input": {"event_slug": "requested-demo", "kind": "ADD_TAG", "config": {"tag": "x"}}})

    assert error(body) == ("TOO_MANY_ACTIONS", None, "An event can have at most 20 actions.")
    assert Action.objects.count() == 20


def test_update_config_condition_enabled_and_position(gql, key, event):
    first = ActionFactory(custom_event=event, config={"tag": "a"}, position=0)
    second = ActionFactory(
        custom_event=event, kind="change_score", config={"delta": 1}, position=1, condition={"key": "k", "op": "exists"}
    )

    body = gql(UPDATE, key, {"input": {"id": str(second.pk), "config": {"delta": -4}, "enabled": False, "position": 0}})
    assert body["data"]["update_action"] | {"id": None} == {
        "id": None,
        "event_slug": "requested-demo",
        "kind": "CHANGE_SCORE",
        "position": 0,
        "enabled": False,
        "config": {"delta": -4},
        "condition": {"key": "k", "op": "EXISTS", "value": None},
        "summary": "Change score by -4",
    }
    first.refresh_from_db()
    assert first.position == 1

    body = gql(UPDATE, key, {"input": {"id": str(second.pk), "clear_condition": True}})
    assert body["data"]["update_action"]["condition"] is None
    body = gql(UPDATE, key, {"input": {"id": str(second.pk), "condition": {"key": "plan", "value": "pro"}}})
    assert body["data"]["update_action"]["condition"] == {"key": "plan", "op": "EQUALS", "value": "pro"}


def test_update_errors_change_nothing(gql, key, event):
    action = ActionFactory(custom_event=event, kind="change_score", config={"delta": 1})

    body = gql(UPDATE, key, {"input": {"id": str(action.pk), "config": {"delta": 0}, "enabled": False}})
    assert error(body) == ("INVALID_CONFIG", "config.delta", "Zero points would change nothing.")
    body = gql(UPDATE, key, {"input": {"id": str(action.pk), "condition": {"key": "k"}, "clear_condition": True}})
    assert error(body) == (
        "INVALID_CONDITION",
        "clear_condition",
        "Give either condition or clear_condition, not both.",
    )
    for bad_id in ("999999", "abc", "-1"):
        assert error(gql(UPDATE, key, {"input": {"id": bad_id, "enabled": False}}))[0] == "ACTION_NOT_FOUND"

    action.refresh_from_db()
    assert (action.config, action.enabled) == ({"delta": 1}, True)


def test_delete(gql, key, event):
    first = ActionFactory(custom_event=event, config={"tag": "a"}, position=0)
    second = ActionFactory(custom_event=event, config={"tag": "b"}, position=1)

    body = gql("mutation($id: ID!) { delete_action(id: $id) }", key, {"id": str(first.pk)})

    assert body == {"data": {"delete_action": True}}
    second.refresh_from_db()
    assert list(Action.objects.values_list("pk", "position")) == [(second.pk, 0)]
    body = gql("mutation($id: ID!) { delete_action(id: $id) }", key, {"id": str(first.pk)})
    assert error(body)[0] == "ACTION_NOT_FOUND"


def test_another_accounts_key_cannot_read_or_change_actions(gql, other_key, event, other_account):
    CustomEventFactory(account=other_account, slug="requested-demo")  # the same slug in their own account
    action = ActionFactory(custom_event=event, config={"tag": "mine"})

    body = gql('{ actions(event_slug: "requested-demo") { id } }', other_key)
    assert body == {"data": {"actions": []}}
    assert error(gql(UPDATE, other_key, {"input": {"id": str(action.pk), "enabled": False}}))[0] == "ACTION_NOT_FOUND"
    body = gql("mutation($id: ID!) { delete_action(id: $id) }", other_key, {"id": str(action.pk)})
    assert error(body)[0] == "ACTION_NOT_FOUND"

    action.refresh_from_db()
    assert action.enabled is True


def test_without_a_key_nothing_happens(client, event):
    response = client.post(
        "/graphql/",
        json.dumps(
            {
                "query": CREATE,
                "variables": {"input": {"event_slug": "requested-demo", "kind": "ADD_TAG", "config": {"tag": "x"}}},
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 401 and response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert Action.objects.count() == 0


def test_an_action_created_through_graphql_runs_on_the_next_event(gql, key, event, contact, fire):
    fire(event, contact)  # the event had no actions (and that is cached)
    gql(CREATE, key, {"input": {"event_slug": "requested-demo", "kind": "CHANGE_SCORE", "config": {"delta": 3}}})

    fire(event, contact)

    contact.refresh_from_db()
    assert contact.score == 3

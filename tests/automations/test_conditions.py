"""The optional condition on a metadata value: validation, and when it holds."""

import pytest
from django.core.exceptions import ValidationError

from automations.conditions import condition_clean, condition_describe, condition_matches
from automations.models import Action, ActionRun
from automations.services import action_create
from tests.factories import ActionFactory
from tracking.models import ContactTag


@pytest.mark.parametrize(
    "condition, metadata, expected",
    [
        (None, None, True),
        ({"key": "planTier", "op": "equals", "value": "enterprise"}, {"planTier": "enterprise"}, True),
        ({"key": "planTier", "op": "equals", "value": "enterprise"}, {"planTier": "Enterprise"}, False),
        ({"key": "planTier", "op": "equals", "value": "enterprise"}, {}, False),
        ({"key": "planTier", "op": "equals", "value": "enterprise"}, None, False),
        ({"key": "percentWatched", "op": "equals", "value": "87"}, {"percentWatched": 87}, True),
        ({"key": "trial", "op": "equals", "value": "true"}, {"trial": True}, True),
        ({"key": "planTier", "op": "not_equals", "value": "free"}, {"planTier": "pro"}, True),
        ({"key": "planTier", "op": "not_equals", "value": "free"}, {}, True),
        ({"key": "planTier", "op": "not_equals", "value": "free"}, {"planTier": "free"}, False),
        ({"key": "title", "op": "contains", "value": "Overview"}, {"title": "Product Overview"}, True),
        ({"key": "tags", "op": "contains", "value": "b"}, {"tags": ["a", "b"]}, True),
        ({"key": "tags", "op": "contains", "value": "c"}, {"tags": ["a", "b"]}, False),
        ({"key": "n", "op": "contains", "value": "1"}, {"n": 12}, False),
        ({"key": "percentWatched", "op": "greater_than", "value": 50}, {"percentWatched": 87}, True),
        ({"key": "percentWatched", "op": "greater_than", "value": "50"}, {"percentWatched": "87.5"}, True),
        ({"key": "percentWatched", "op": "greater_than", "value": 90}, {"percentWatched": 87}, False),
        ({"key": "percentWatched", "op": "greater_than", "value": 0}, {"percentWatched": "lots"}, False),
        ({"key": "percentWatched", "op": "greater_than", "value": 0}, {"percentWatched": True}, False),
        ({"key": "seats", "op": "less_than", "value": 10}, {"seats": 3}, True),
        ({"key": "seats", "op": "exists"}, {"seats": None}, True),
        ({"key": "seats", "op": "exists"}, {}, False),
        ({"key": "seats", "op": "not_exists"}, {}, True),
    ],
)
def test_condition_matches(condition, metadata, expected):
    assert condition_matches(condition_clean(condition), metadata) is expected


@pytest.mark.parametrize(
    "condition, field, code",
    [
        ("planTier", "condition_key", "invalid"),
        ({"key": "", "op": "equals", "value": "x"}, "condition_key", "required"),
        ({"key": "k" * 101, "op": "equals", "value": "x"}, "condition_key", "too_long"),
        ({"key": "planTier", "op": "matches", "value": "x"}, "condition_op", "invalid_choice"),
        ({"key": "planTier", "op": "equals", "value": ""}, "condition_value", "required"),
        ({"key": "planTier", "op": "equals", "value": {"a": 1}}, "condition_value", "invalid"),
        ({"key": "planTier", "op": "equals", "value": "v" * 501}, "condition_value", "too_long"),
        ({"key": "seats", "op": "greater_than", "value": "many"}, "condition_value", "not_a_number"),
        ({"key": "seats", "op": "equals", "value": "1", "flags": "i"}, "condition_key", "unknown_setting"),
    ],
)
def test_condition_validation(condition, field, code):
    with pytest.raises(ValidationError) as raised:
        condition_clean(condition)

    assert [e.code for e in raised.value.error_dict[field]] == [code]


def test_condition_clean_normalises():
    assert condition_clean({"key": "", "op": "", "value": ""}) is None
    assert condition_clean({"key": " planTier ", "value": " enterprise "}) == {
        "key": "planTier",
        "op": "equals",
        "value": "enterprise",
    }
    assert condition_clean({"key": "seats", "op": "exists", "value": "ignored"}) == {
        "key": "seats",
        "op": "exists",
        "value": None,
    }
    assert condition_describe(condition_clean({"key": "planTier", "value": "enterprise"})) == (
        "planTier equals “enterprise”"
    )


@pytest.mark.django_db
def test_action_with_a_false_condition_is_skipped_without_a_task(event, contact, fire, monkeypatch):
    from automations import tasks

    sent = []
    monkeypatch.setattr(tasks.action_run_task, "delay", lambda run_id: sent.append(run_id))
    ActionFactory(
        custom_event=event,
        kind="add_tag",
        config={"tag": "enterprise"},
        condition={"key": "planTier", "op": "equals", "value": "enterprise"},
    )

    record = fire(event, contact, metadata={"planTier": "free"})

    run = ActionRun.objects.get(event_record=record)
    assert (run.status, run.attempts, run.result) == ("skipped", 0, "Condition not met: planTier equals “enterprise”")
    assert sent == []
    assert not ContactTag.objects.exists()


@pytest.mark.django_db
def test_action_with_a_true_condition_runs(event, contact, fire):
    action_create(
        custom_event=event,
        kind="add_tag",
        config={"tag": "enterprise"},
        condition={"key": "planTier", "op": "equals", "value": "enterprise"},
    )

    fire(event, contact, metadata={"planTier": "enterprise"})

    assert list(ContactTag.objects.values_list("name", flat=True)) == ["enterprise"]


@pytest.mark.django_db
def test_invalid_condition_is_refused_with_the_config_errors(event):
    with pytest.raises(ValidationError) as raised:
        action_create(custom_event=event, kind="add_tag", config={}, condition={"key": "x", "op": "greater_than"})

    assert set(raised.value.error_dict) == {"tag", "condition_value"}
    assert Action.objects.count() == 0

"""action_runs_create_many(): the runs of many recorded events (an API batch) in one bulk insert."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from automations.models import ActionRun
from automations.services import action_runs_create_many
from tests.factories import ActionFactory, ContactFactory, CustomEventFactory, EventRecordFactory

pytestmark = pytest.mark.django_db


def test_the_runs_of_many_events_are_one_insert_and_one_enqueue_after_commit(
    account, sent, django_capture_on_commit_callbacks
):
    # given: an event with two actions (one conditional, one needing a known contact), one without actions
    demo = CustomEventFactory(account=account, slug="requested-demo")
    tag = ActionFactory(custom_event=demo, kind="add_tag", config={"tag": "lead"}, position=0)
    hook = ActionFactory(
        custom_event=demo,
        kind="webhook",
        config={"url": "https://hooks.example.com/x"},
        condition={"key": "plan", "op": "equals", "value": "pro"},
        position=1,
    )
    ActionFactory(custom_event=demo, kind="add_tag", config={"tag": "off"}, enabled=False, position=2)
    quiet = CustomEventFactory(account=account, slug="watched-video")
    known = ContactFactory(account=account, email="ada@example.com")
    anonymous = ContactFactory(account=account, email=None)
    records = [
        EventRecordFactory(custom_event=demo, contact=known, metadata={"plan": "pro"}),
        EventRecordFactory(custom_event=quiet, contact=known),
        EventRecordFactory(custom_event=demo, contact=known, metadata={"plan": "free"}),
        EventRecordFactory(custom_event=demo, contact=anonymous, metadata={"plan": "pro"}),
    ]

    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with CaptureQueriesContext(connection) as queries:
            runs = action_runs_create_many(event_records=records)
    inserts = [q["sql"] for q in queries if q["sql"].startswith('INSERT INTO "automations_actionrun"')]

    # then: one insert for every run; each event's actions looked up once
    assert len(inserts) == 1
    stored = {(r.event_record_id, r.action_id): r.status for r in ActionRun.objects.all()}
    assert stored == {
        (records[0].pk, tag.pk): "pending",
        (records[0].pk, hook.pk): "pending",
        (records[2].pk, tag.pk): "pending",
        (records[2].pk, hook.pk): "skipped",  # condition not met
        (records[3].pk, tag.pk): "pending",
        (records[3].pk, hook.pk): "waiting",  # a webhook needs a known contact
    }
    assert len(runs) == 6
    assert sent == [] and len(callbacks) == 1
    callbacks[0]()
    assert sorted(sent) == sorted(r.pk for r in runs if r.status == "pending")


def test_events_without_actions_write_nothing_and_enqueue_nothing(account, django_capture_on_commit_callbacks):
    quiet = CustomEventFactory(account=account)
    records = [EventRecordFactory(custom_event=quiet) for _ in range(3)]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert action_runs_create_many(event_records=records) == []

    assert ActionRun.objects.count() == 0
    assert callbacks == []

"""Creating runs when an event is recorded, the cache that keeps events without actions free, and resuming runs
that waited for an anonymous visitor to be identified."""

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from automations.cache import event_actions_version, event_has_no_actions_remember
from automations.models import ActionRun
from automations.services import action_create, action_delete, action_runs_create, action_runs_resume, action_update
from tests.factories import ActionFactory, ActionRunFactory, ContactFactory, EventRecordFactory, VisitorFactory
from tracking.ingest import event_record
from tracking.models import Contact, EventRecord
from tracking.services import contact_identify

pytestmark = pytest.mark.django_db


def test_one_pending_run_per_enabled_action_enqueued_after_commit(
    event, contact, sent, django_capture_on_commit_callbacks
):
    first = ActionFactory(custom_event=event, kind="add_tag", config={"tag": "a"}, position=0)
    second = ActionFactory(custom_event=event, kind="change_score", config={"delta": 1}, position=1)
    ActionFactory(custom_event=event, kind="add_tag", config={"tag": "off"}, enabled=False, position=2)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        record, created = event_record(account=event.account, custom_event=event, contact=contact, source="api")
    assert sent == []  # nothing is published inside the transaction

    runs = list(ActionRun.objects.filter(event_record=record).order_by("pk"))
    assert created and [r.action_id for r in runs] == [first.pk, second.pk]
    assert {(r.status, r.attempts, r.account_id, r.custom_event_id) for r in runs} == {
        ("pending", 0, event.account_id, event.pk)
    }
    for callback in callbacks:
        callback()
    assert sent == [r.pk for r in runs]


def test_a_rolled_back_event_leaves_no_run_and_sends_nothing(event, contact, sent, django_capture_on_commit_callbacks):
    ActionFactory(custom_event=event)

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                event_record(account=event.account, custom_event=event, contact=contact, source="api")
                raise RuntimeError("the caller failed after recording")

    assert EventRecord.objects.count() == 0 and ActionRun.objects.count() == 0
    assert sent == []


def test_a_run_is_unique_per_action_and_event_record(event, contact):
    run = ActionRunFactory(action=ActionFactory(custom_event=event))

    with pytest.raises(IntegrityError), transaction.atomic():
        ActionRun.objects.create(
            account=run.account, action=run.action, custom_event=event, event_record=run.event_record
        )
    assert ActionRun.objects.count() == 1


def test_an_event_without_actions_costs_no_query_once_cached(event, contact, django_assert_num_queries):
    record = EventRecordFactory(custom_event=event, contact=contact)
    with django_assert_num_queries(1):
        assert action_runs_create(event_record=record) == []

    with django_assert_num_queries(0):
        assert action_runs_create(event_record=record) == []


def test_every_change_to_actions_is_seen_by_the_next_event(event, contact, sent, fire):
    fire(event, contact)  # caches "no actions"

    action = action_create(custom_event=event, kind="add_tag", config={"tag": "new"})
    assert ActionRun.objects.filter(event_record=fire(event, contact)).count() == 1

    action_update(action=action, enabled=False)
    assert ActionRun.objects.filter(event_record=fire(event, contact)).count() == 0

    action_update(action=action, enabled=True)
    assert ActionRun.objects.filter(event_record=fire(event, contact)).count() == 1

    action_delete(action=action)
    assert ActionRun.objects.filter(event_record=fire(event, contact)).count() == 0


def test_a_stale_negative_entry_written_after_a_change_is_not_trusted(event, contact):
    # A recorder reads "no actions" from the database just before an action is committed, and writes its cache
    # entry just after: the entry carries the version it read, which the change has moved past.
    no_actions, version = event_actions_version(custom_event_id=event.pk)
    assert no_actions is False
    action_create(custom_event=event, kind="add_tag", config={"tag": "x"})
    event_has_no_actions_remember(custom_event_id=event.pk, version=version)

    record = EventRecordFactory(custom_event=event, contact=contact)
    assert len(action_runs_create(event_record=record)) == 1


def test_for_anonymous_visitors_additive_kinds_run_and_the_others_wait(event, anonymous_contact, sent, fire):
    kinds = [
        ("add_tag", {"tag": "t"}),
        ("remove_tag", {"tag": "t"}),
        ("add_to_list", {"list": "l"}),
        ("change_score", {"delta": 1}),
        ("set_field", {"field": "f", "value": "v"}),
        ("notify_email", {"to": ["team@acme.test"]}),
        ("webhook", {"url": "https://example.com/h"}),
    ]
    for kind, config in kinds:
        action_create(custom_event=event, kind=kind, config=config)

    record = fire(event, anonymous_contact, source="beacon")

    runs = ActionRun.objects.filter(event_record=record).select_related("action")
    assert {run.action.kind: run.status for run in runs} == {
        "add_tag": "pending",
        "add_to_list": "pending",
        "change_score": "pending",
        "remove_tag": "waiting",
        "set_field": "waiting",
        "notify_email": "waiting",
        "webhook": "waiting",
    }
    assert sorted(sent) == sorted(run.pk for run in runs if run.status == "pending")


@pytest.fixture
def visitor(account, anonymous_contact):
    return VisitorFactory(account=account, contact=anonymous_contact)


def test_identifying_a_new_contact_resumes_its_waiting_runs(
    event, account, visitor, fire, django_capture_on_commit_callbacks
):
    ActionFactory(custom_event=event, kind="set_field", config={"field": "stage", "value": "engaged"})
    ActionFactory(custom_event=event, kind="notify_email", config={"to": ["team@acme.test"]})
    fire(event, visitor.contact, source="beacon")
    fire(event, visitor.contact, source="beacon")
    assert set(ActionRun.objects.values_list("status", flat=True)) == {"waiting"} and mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        contact = contact_identify(account=account, visitor=visitor, email="late@example.com")

    contact.refresh_from_db()
    assert contact.fields == {"stage": "engaged"}
    assert len(mail.outbox) == 2 and "Contact:   late@example.com" in mail.outbox[0].body
    assert set(ActionRun.objects.values_list("status", flat=True)) == {"succeeded"}


def test_identifying_into_an_existing_contact_merges_and_resumes(
    event, account, visitor, contact, fire, django_capture_on_commit_callbacks
):
    ActionFactory(custom_event=event, kind="add_tag", config={"tag": "merged"}, position=0)
    ActionFactory(custom_event=event, kind="change_score", config={"delta": 5}, position=1)
    ActionFactory(custom_event=event, kind="set_field", config={"field": "stage", "value": "sql"}, position=2)
    Contact.objects.filter(pk=contact.pk).update(score=100, fields={"stage": "lead"})
    fire(event, visitor.contact, source="beacon")
    anonymous = Contact.objects.get(pk=visitor.contact_id)
    assert (anonymous.score, list(anonymous.tags.values_list("name", flat=True))) == (5, ["merged"])
    # Someone else's waiting run, in the same account, must stay waiting.
    bystander_record = fire(event, ContactFactory(account=account, email=None), source="beacon")

    with django_capture_on_commit_callbacks(execute=True):
        known = contact_identify(account=account, visitor=visitor, email=contact.email)

    known.refresh_from_db()
    assert known.pk == contact.pk and not Contact.objects.filter(pk=anonymous.pk).exists()
    # Applied while anonymous, carried over by the merge; the field waited, so the event's value wins.
    assert (known.score, known.fields) == (105, {"stage": "sql"})
    assert list(known.tags.values_list("name", flat=True)) == ["merged"]
    assert ActionRun.objects.get(event_record=bystander_record, action__kind="set_field").status == "waiting"


def test_resume_of_an_anonymous_contact_or_nothing_waiting_is_zero(event, anonymous_contact, contact, sent, fire):
    ActionFactory(custom_event=event, kind="set_field", config={"field": "f", "value": "v"})
    fire(event, anonymous_contact, source="beacon")

    assert action_runs_resume(contact=anonymous_contact) == 0
    assert action_runs_resume(contact=contact) == 0
    assert ActionRun.objects.get().status == "waiting"
    assert sent == []


def test_resume_counts_and_enqueues_after_commit(
    event, account, anonymous_contact, sent, fire, django_capture_on_commit_callbacks
):
    ActionFactory(custom_event=event, kind="remove_tag", config={"tag": "cold"})
    fire(event, anonymous_contact, source="beacon")
    fire(event, anonymous_contact, source="beacon")
    waiting = sorted(ActionRun.objects.values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with transaction.atomic():
            Contact.objects.filter(pk=anonymous_contact.pk).update(email="x@example.com")
            anonymous_contact.email = "x@example.com"
            assert action_runs_resume(contact=anonymous_contact) == 2
            assert sent == []
    assert set(ActionRun.objects.values_list("status", flat=True)) == {"pending"}
    for callback in callbacks:
        callback()
    assert sorted(sent) == waiting


def test_a_run_that_finds_its_contact_still_anonymous_goes_back_to_waiting(event, anonymous_contact):
    from automations.services import action_run_execute

    run = ActionRunFactory(
        action=ActionFactory(custom_event=event, kind="set_field", config={"field": "f", "value": "v"}),
        event_record=EventRecordFactory(custom_event=event, contact=anonymous_contact),
    )

    outcome = action_run_execute(run_id=run.pk)

    run.refresh_from_db()
    anonymous_contact.refresh_from_db()
    assert outcome.status == "waiting" and (run.status, run.attempts) == ("waiting", 0)
    assert anonymous_contact.fields == {}

"""With JOINS_MATCH_ACCOUNT on (as when the tables are distributed by account: docs/scaling.md, Citus), every join
between two of an account's tables matches the account as well as the id (paminga.fields), so that distributing
them needs no change of schema or query, and a join never reaches another account's row whatever an id holds. Off
(the default, on one PostgreSQL) the joins go by id alone. On SQLite and on PostgreSQL."""

import pytest
from django.apps import apps

from automations.models import Action, ActionRun
from custom_events.models import CustomEvent, MarketingSource
from paminga.fields import AccountForeignKey
from paminga.models import Account
from tests.factories import (
    ActionRunFactory,
    ContactFactory,
    EventRecordFactory,
    ImpressionFactory,
)
from tracking.models import Contact, EventRecord, Impression, Session, Visitor

# Replicated to every node rather than distributed (docs/scaling.md): a join to one of them needs no account.
REFERENCE_MODELS = {Account, CustomEvent, MarketingSource, Action}


def _per_account(model) -> bool:
    try:
        field = model._meta.get_field("account")
    except Exception:
        return False
    return field.is_relation and field.related_model is Account


def _references_between_account_tables():
    for model in apps.get_models():
        if model in REFERENCE_MODELS or not _per_account(model):
            continue
        for field in model._meta.local_fields:
            one = field.many_to_one or field.one_to_one
            if field.name != "account" and one and field.related_model not in REFERENCE_MODELS:
                if _per_account(field.related_model):
                    yield field


def test_every_reference_between_account_tables_joins_by_account():
    references = list(_references_between_account_tables())
    names = {f"{field.model.__name__}.{field.name}" for field in references}
    # The references the docs list (an occurrence's contact, visitor, visit and page view; a page view's visit and
    # visitor; a visit's visitor; a visitor's contact and visit; a run's occurrence): none is missed by the walk.
    assert {
        "EventRecord.contact",
        "EventRecord.visitor",
        "EventRecord.session",
        "EventRecord.attributed_impression",
        "Impression.session",
        "Impression.visitor",
        "Session.visitor",
        "Visitor.contact",
        "Visitor.current_session",
        "ActionRun.event_record",
    } <= names
    plain = sorted(
        f"{field.model.__name__}.{field.name}" for field in references if not isinstance(field, AccountForeignKey)
    )
    assert plain == [], f"joined by id alone: {plain}"


@pytest.fixture
def distributed(settings):
    settings.JOINS_MATCH_ACCOUNT = True


def _account_condition(table: str, other: str) -> str:
    return f'"{table}"."account_id" = ("{other}"."account_id")'


@pytest.mark.django_db
def test_joins_either_way_carry_the_account_in_their_condition(distributed):
    forward = str(EventRecord.objects.values("session__visitor__uid", "attributed_impression__url_text__value").query)
    assert _account_condition("tracking_session", "tracking_eventrecord") in forward
    assert _account_condition("tracking_visitor", "tracking_session") in forward
    assert _account_condition("tracking_impression", "tracking_eventrecord") in forward
    reverse = str(Contact.objects.filter(visitors__sessions__channel="EMAIL").query)
    assert _account_condition("tracking_contact", "tracking_visitor") in reverse
    assert _account_condition("tracking_visitor", "tracking_session") in reverse
    runs = str(ActionRun.objects.values("event_record__page_url_text__value").query)
    assert _account_condition("tracking_eventrecord", "automations_actionrun") in runs


def test_with_the_setting_off_joins_go_by_id_alone(settings):
    settings.JOINS_MATCH_ACCOUNT = False  # the default (paminga/settings.py)
    query = str(EventRecord.objects.values("session__visitor__uid", "contact__email").query)
    for join in (
        'LEFT OUTER JOIN "tracking_session" ON ("tracking_eventrecord"."session_id" = "tracking_session"."id")',
        'LEFT OUTER JOIN "tracking_visitor" ON ("tracking_session"."visitor_id" = "tracking_visitor"."id")',
        'INNER JOIN "tracking_contact" ON ("tracking_eventrecord"."contact_id" = "tracking_contact"."id")',
    ):
        assert join in query


@pytest.mark.django_db
def test_a_join_never_reaches_another_accounts_row(distributed):
    impression = ImpressionFactory()
    record = EventRecordFactory(
        account=impression.account,
        custom_event__account=impression.account,
        contact=impression.visitor.contact,
        visitor=impression.visitor,
        session=impression.session,
        attributed_impression=impression,
    )
    own = EventRecord.objects.filter(pk=record.pk)
    assert list(
        own.values_list(
            "contact__email", "visitor__uid", "session__visitor__uid", "attributed_impression__url_text__value"
        )
    ) == [(record.contact.email, impression.visitor.uid, impression.visitor.uid, impression.url)]

    # Ids that point into another account (no code path writes them: a defect or a tampered row).
    stranger = ImpressionFactory()
    stranger_contact = ContactFactory(account=stranger.account, email="stranger@other.example")
    own.update(
        contact=stranger_contact,
        visitor=stranger.visitor,
        session=stranger.session,
        attributed_impression=stranger,
    )
    Impression.objects.filter(pk=impression.pk).update(session=stranger.session, visitor=stranger.visitor)
    Session.objects.filter(pk=impression.session_id).update(visitor=stranger.visitor)
    Visitor.objects.filter(pk=impression.visitor_id).update(contact=stranger_contact)

    # An inner join finds nothing, an outer one nothing joined: never the other account's values.
    assert list(own.values_list("contact__email", flat=True)) == []
    assert list(own.values_list("visitor__uid", "session__started_at", "attributed_impression__url_text__value")) == [
        (None, None, None)
    ]
    assert not Impression.objects.filter(pk=impression.pk, session__visitor__isnull=False).exists()
    assert not Session.objects.filter(pk=impression.session_id, visitor__uid=stranger.visitor.uid).exists()
    assert not Contact.objects.filter(pk=stranger_contact.pk, event_records__isnull=False).exists()
    assert not Contact.objects.filter(pk=stranger_contact.pk, visitors__uid=impression.visitor.uid).exists()

    run = ActionRunFactory(account=impression.account, custom_event=record.custom_event, event_record=record)
    assert list(ActionRun.objects.filter(pk=run.pk).values_list("event_record__contact__email", flat=True)) == []
    ActionRun.objects.filter(pk=run.pk).update(
        event_record=EventRecordFactory(account=stranger.account, custom_event__account=stranger.account)
    )
    assert list(ActionRun.objects.filter(pk=run.pk).values_list("event_record__occurred_at", flat=True)) == []

"""SQL for the API's hot path: firing a custom event in one statement (PostgreSQL).

Most `triggerCustomEvent` calls name an event without actions and carry neither a visitor id nor an idempotency key.
For those, one statement does what the general path (services.custom_event_trigger_many) does in a transaction of
several round trips: it finds the account's contact by its (lowercased) email or creates it, matches the marketing
source name, and inserts the event record. A single statement in autocommit is one transaction. When the event has
actions, the statement writes nothing and the caller takes the general path, which creates their runs in the same
transaction and stays the reference for every rule (tests compare the rows both write). The statement is prepared on
the server, and its columns and types come from the models, through tracking.sql's helpers.
"""

from django.db import connection

from tracking.models import Contact, EventRecord
from tracking.sql import cast_type, insert_select, prepared_statement, quote, values_params

_sql: dict[str, str] = {}

# What the event row takes from the statement rather than from its own parameters.
_GIVEN = {
    "contact_id": "c.id",
    "marketing_source_id": "ms.id",
    # An explicit channel wins; otherwise the matched source's, as tracking.services._event_record_new does.
    "marketing_channel": "COALESCE(NULLIF(CAST(%(ev_marketing_channel)s AS varchar), ''), ms.channel, '')",
}


def _trigger_sql() -> str:
    from automations.models import Action

    from .models import MarketingSource

    contact, action, source = (quote(m._meta.db_table) for m in (Contact, Action, MarketingSource))
    on_conflict = 'ON CONFLICT DO NOTHING RETURNING "id"'
    name_type = cast_type(EventRecord, "marketing_source_name")
    ctes = [
        # Events with actions take the general path.
        f'ok AS (SELECT WHERE NOT EXISTS (SELECT 1 FROM {action} a WHERE a."custom_event_id" = %(event_id)s))',
        # Emails are stored lowercased: the contact_account_email index finds it (as the ORM's email = %s does).
        f'found AS (SELECT k."id" FROM {contact} k, ok WHERE k."account_id" = %(account_id)s '
        'AND k."email" = %(contact_email)s LIMIT 1)',
        # A concurrent request may create the same contact first: then nothing is inserted here, no event either,
        # and the caller takes the general path, which finds that contact.
        "created AS ("
        + insert_select(Contact, "contact_", {}, "ok", f" WHERE NOT EXISTS (SELECT 1 FROM found) {on_conflict}")
        + ")",
        'c AS (SELECT "id" FROM found UNION ALL SELECT "id" FROM created)',
        # The ORM's name__iexact, with MarketingSource.Meta.ordering, as selectors.marketing_source_match().
        f'ms AS (SELECT m."id", m."channel" FROM {source} m WHERE %(match_source)s AND m."account_id" = %(account_id)s '
        f'AND UPPER(m."name"::text) = UPPER(CAST(%(ev_marketing_source_name)s AS {name_type})) '
        'ORDER BY m."name" LIMIT 1)',
        "ins AS ("
        + insert_select(
            EventRecord,
            "ev_",
            _GIVEN,
            "c LEFT JOIN ms ON TRUE",
            ' RETURNING "id", "contact_id", "marketing_source_id", "marketing_channel"',
        )
        + ")",
    ]
    return f"WITH {', '.join(ctes)} SELECT * FROM ins"


def trigger_sql() -> str:
    if connection.vendor not in _sql:
        _sql[connection.vendor] = _trigger_sql()
    return _sql[connection.vendor]


def trigger_params(*, event_values: dict, contact_values: dict, match_source: bool) -> dict:
    """The statement's parameters: the event record's columns (by attname; its contact and source are left to the
    statement), the contact's to create when there is none, and whether a marketing source name is to be matched."""
    return {
        **values_params(EventRecord, "ev_", event_values, _GIVEN),
        **values_params(Contact, "contact_", contact_values),
        "ev_marketing_channel": event_values["marketing_channel"],
        "event_id": event_values["custom_event_id"],
        "account_id": event_values["account_id"],
        "match_source": match_source,
    }


def trigger_statement(params: dict) -> tuple | None:
    """Runs the statement; returns the new event record's (id, contact_id, marketing_source_id, marketing_channel),
    or None when nothing was written (the event has actions, or a concurrent request created the contact first)."""
    # Without an idempotency key, a statement that committed just before its connection broke would be recorded
    # twice if sent again. It is sent again only on the request's first use of a connection kept from an earlier
    # request, which is what fails when the database dropped it meanwhile (a restart, an idle timeout): the case
    # Django's per-request health check is for, and where the statement never reached the database.
    retry = connection.health_check_enabled and not connection.health_check_done
    return prepared_statement(trigger_sql(), params, retry=retry)

from django.db import connection
from django.db.models import Count, QuerySet

from custom_events.models import CustomEvent
from paminga.models import Account

from . import sql
from .models import Contact, EventRecord, Impression, RejectedHit, Session, Visitor

DEMO_ACCOUNT_SLUG = "demo"


def rejected_hit_list(*, account: Account, reason: str = "", limit: int = 200) -> list[RejectedHit]:
    entries = RejectedHit.objects.filter(account=account)
    if reason:
        entries = entries.filter(reason=reason)
    return list(entries.order_by("-created_at", "-id")[:limit])


def rejected_hit_counts(*, account: Account) -> dict[str, int]:
    rows = RejectedHit.objects.filter(account=account).values("reason").annotate(n=Count("id"))
    return {row["reason"]: row["n"] for row in rows}


def demo_account() -> Account | None:
    return Account.objects.filter(slug=DEMO_ACCOUNT_SLUG).first()


def custom_event_list_for_demo(*, account: Account) -> QuerySet[CustomEvent]:
    return CustomEvent.objects.filter(account=account).order_by("name")


def event_record_recent(*, account: Account, limit: int = 10) -> list[EventRecord]:
    return list(
        EventRecord.objects.filter(account=account)
        .select_related("custom_event", "contact", "attributed_impression")
        .order_by("-occurred_at", "-id")[:limit]
    )


def impression_recent(*, account: Account, limit: int = 10) -> list[Impression]:
    return list(
        Impression.objects.filter(account=account)
        .select_related("visitor__contact")
        .order_by("-occurred_at", "-id")[:limit]
    )


# --- The beacon's hot read ----------------------------------------------------------------------------------------

_HIT_SQL: dict[str, str] = {}
_HIT_SIZES = [len(model._meta.concrete_fields) for model in (Visitor, Contact)]


def visitor_for_hit(*, account: Account, uid: str) -> Visitor | None:
    """The account's visitor with this beacon id, its contact and its latest visit, in one query (see tracking.sql:
    every hit makes it)."""
    query = _HIT_SQL.get(connection.vendor)
    if query is None:
        query = _HIT_SQL[connection.vendor] = (
            f"SELECT {sql.columns(Visitor, 'v')}, {sql.columns(Contact, 'c')}, {sql.columns(Session, 's')} "
            f'FROM "{Visitor._meta.db_table}" v JOIN "{Contact._meta.db_table}" c ON c."id" = v."contact_id" '
            f'LEFT JOIN "{Session._meta.db_table}" s ON s."id" = v."current_session_id" '
            'WHERE v."account_id" = %s AND v."uid" = %s'
        )
    with connection.cursor() as cursor:
        cursor.execute(query, [account.pk, uid])
        row = cursor.fetchone()
    if row is None:
        return None
    split = _HIT_SIZES[0] + _HIT_SIZES[1]
    visitor = sql.instance_from_row(Visitor, row[: _HIT_SIZES[0]])
    visitor.contact = sql.instance_from_row(Contact, row[_HIT_SIZES[0] : split])
    visitor.current_session = sql.instance_from_row(Session, row[split:]) if row[split] is not None else None
    return visitor


_LATEST_IMPRESSION_SQL = (
    f'SELECT "id" FROM "{Impression._meta.db_table}" WHERE "session_id" = %s AND "occurred_at" <= %s '
    'ORDER BY "occurred_at" DESC, "id" DESC LIMIT 1'
)


def impression_latest_id(*, session: Session, at) -> int | None:
    """The id of the visit's most recent impression at `at` (the one a conversion is attributed to), or None."""
    occurred_at = Impression._meta.get_field("occurred_at").get_db_prep_value(at, connection)
    with connection.cursor() as cursor:
        cursor.execute(_LATEST_IMPRESSION_SQL, [session.pk, occurred_at])
        row = cursor.fetchone()
    return row[0] if row else None

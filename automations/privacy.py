"""A person's data: erase it, export it (docs/privacy.md).

This module lives in automations because that app sees every table that holds a person: the tracking rows
(contact, visitors, visits, page views, events, debugger entries), the action runs and the report rollups.
"""

import json
import logging
from dataclasses import dataclass, field
from functools import partial

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from paminga.models import Account
from tracking.models import (
    Contact,
    ContactListMembership,
    ContactTag,
    EventRecord,
    Impression,
    RejectedHit,
    Session,
    Visitor,
)
from tracking.texts import page_texts_purge, text_value

from .models import ActionRun, ContactErasure, EventDailyBreakdown

logger = logging.getLogger(__name__)

# What a report breakdown value that named the person (a metadata value holding the address) becomes.
ERASED_VALUE = "(erased)"
# Visitor ids per OR'ed text search: a contact with thousands of browsers is searched in slices.
SEARCH_CHUNK = 200


class ContactNotFound(Exception):
    """No contact with this email address in the account."""


def email_normalize(email: str) -> str:
    # Contacts are stored lowercased (tracking.models.Contact.email).
    return (email or "").strip().lower()


def contact_get_by_email(*, account: Account, email: str) -> Contact:
    email = email_normalize(email)
    contact = Contact.objects.filter(account=account, email=email).first() if email else None
    if contact is None:
        raise ContactNotFound(f"No contact with the email address {email!r} in this account.")
    return contact


def rows_delete(queryset: QuerySet) -> int:
    """Deletes the queryset's rows with one DELETE statement, without loading them: `DELETE FROM t WHERE <the
    queryset's conditions>`, or `WHERE id IN (subquery)` when they join other tables. The conditions stay on the
    DELETE itself, so that on a partitioned table a time range in them limits it to those partitions.

    Django's QuerySet.delete() fetches every row of a model that other rows cascade from (events, visits), which
    makes erasing a contact with 10,000 events take seconds. The callers delete the dependent rows first, so no
    cascade is needed (the foreign keys are checked at commit on PostgreSQL and SQLite alike).
    """
    # Django's own fast delete (what QuerySet.delete() runs where nothing cascades), without its cascade collector.
    return max(queryset.order_by()._raw_delete(connection.alias), 0)


def _any_contains(fields: tuple[str, ...], needles: list[str]) -> Q:
    q = Q(pk__in=[])
    for needle in needles:
        for name in fields:
            q |= Q(**{f"{name}__icontains": needle})
    return q


@dataclass
class ContactErasureResult:
    erasure: ContactErasure
    counts: dict = field(default_factory=dict)


def contact_erase(*, account: Account, email: str, erased_by: str) -> ContactErasureResult:
    """Erases a contact and everything recorded about it, in one transaction: its visitors (and their ids), visits,
    page views, events, action runs, tags, list memberships, the event debugger entries that hold its address or
    visitor ids, and report breakdown values holding its address. Raises ContactNotFound.

    Report figures stay as counts without the person: the days' rollups are left as they are (not marked dirty,
    which would recount them from the raw rows that are about to go). Their sets of unique contacts and visitors
    keep bare integers, ids of rows that no longer exist.

    Pending action runs of the contact go with its events: a task that picks one up finds it gone and does
    nothing (automations.services.action_run_execute returns None for a missing run). An audit entry records that
    an erasure happened, when, and who asked (`erased_by`), never whom.
    """
    with transaction.atomic():
        contact = contact_get_by_email(account=account, email=email)
        # Locks the contact: an identification that would merge another contact into it waits, then finds it gone.
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        email = contact.email
        visitors = list(Visitor.objects.filter(contact=contact).values_list("pk", "uid"))
        visitor_pks = [pk for pk, _uid in visitors]
        uids = [uid for _pk, uid in visitors]
        counts = {}

        # Rows of other contacts that point at this contact's browsing (none in normal operation: a merge moves a
        # visitor's events with it) lose the link rather than block the deletion.
        # Two statements, each through its own index: one with an OR across the join to the visits scans every
        # occurrence of every account.
        visits = Session.objects.filter(visitor_id__in=visitor_pks).values("pk")
        for linked in (Q(visitor_id__in=visitor_pks), Q(session_id__in=visits)):
            EventRecord.objects.filter(linked).exclude(contact=contact).update(visitor=None, session=None)
        EventRecord.objects.filter(attributed_impression__session__visitor_id__in=visitor_pks).exclude(
            contact=contact
        ).update(attributed_impression=None)

        counts["action_runs"] = rows_delete(ActionRun.objects.filter(event_record__contact=contact))
        counts["events"] = rows_delete(EventRecord.objects.filter(contact=contact))
        Visitor.objects.filter(pk__in=visitor_pks).update(current_session=None)
        counts["impressions"] = rows_delete(Impression.objects.filter(session__visitor_id__in=visitor_pks))
        counts["visits"] = rows_delete(Session.objects.filter(visitor_id__in=visitor_pks))
        counts["visitors"] = rows_delete(Visitor.objects.filter(pk__in=visitor_pks))
        counts["tags"] = rows_delete(ContactTag.objects.filter(contact=contact))
        counts["list_memberships"] = rows_delete(ContactListMembership.objects.filter(contact=contact))

        needles = [email, *uids]
        counts["debugger_entries"] = counts["report_values"] = 0
        for start in range(0, len(needles), SEARCH_CHUNK):
            chunk = needles[start : start + SEARCH_CHUNK]
            counts["debugger_entries"] += rows_delete(
                RejectedHit.objects.filter(account=account).filter(_any_contains(("excerpt", "message", "slug"), chunk))
            )
            counts["report_values"] += (
                EventDailyBreakdown.objects.filter(account=account)
                .filter(_any_contains(("value",), chunk))
                .update(value=ERASED_VALUE)
            )
        counts["admin_log_entries"] = _admin_log_erase(contact=contact, email=email)
        counts["contacts"] = rows_delete(Contact.objects.filter(pk=contact.pk))
        erasure = ContactErasure.objects.create(account=account, erased_by=erased_by[:200], counts=counts)
        transaction.on_commit(partial(_texts_purge_enqueue, erasure.pk))
    logger.info("Contact erased in account %s by %s: %s", account.pk, erased_by, counts)
    return ContactErasureResult(erasure=erasure, counts=counts)


def _texts_purge_enqueue(erasure_id: int) -> None:
    from .tasks import erasure_texts_purge_task

    erasure_texts_purge_task.delay(erasure_id)


def erasure_texts_purge(*, erasure_id: int) -> int:
    """After an erasure has committed: deletes the page texts (URLs, titles, referrers) that no row of the account
    uses any more, which includes those only the erased contact's rows used (a URL may hold its address). It reads
    every row of the account, so it does not hold the erasure's transaction (tracking.texts). Returns how many
    went."""
    erasure = ContactErasure.objects.filter(pk=erasure_id, texts_purged_at__isnull=True).first()
    if erasure is None:
        return 0
    started = timezone.now()
    deleted = page_texts_purge(account_id=erasure.account_id)
    # Every erasure of the account committed before this purge began is covered by it.
    ContactErasure.objects.filter(
        account_id=erasure.account_id, texts_purged_at__isnull=True, erased_at__lte=started
    ).update(texts_purged_at=timezone.now())
    logger.info("Page texts purged after erasure %s: %d", erasure_id, deleted)
    return deleted


def _admin_log_erase(*, contact: Contact, email: str) -> int:
    """The Django admin's history names the objects it changed (a contact's address is its name there)."""
    if not apps.is_installed("django.contrib.admin"):
        return 0
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_model(Contact)
    return rows_delete(
        LogEntry.objects.filter(
            Q(content_type=content_type, object_id=str(contact.pk))
            | Q(object_repr__icontains=email)
            | Q(change_message__icontains=email)
        )
    )


def erased_by_label(*, user=None, api_key=None) -> str:
    """Who asked for an erasure, as the audit entry keeps it."""
    if api_key is not None:
        return f"API key {api_key.name}"
    if user is not None and user.is_authenticated:
        return f"user {user.get_username()}"
    return "command"


# --- Export --------------------------------------------------------------------------------------------------

EXPORT_FORMAT = 1


def _rows(queryset: QuerySet, *fields: str) -> list[dict]:
    """The rows' fields; a text stored as a reference (TEXTS) by its name, read through the reference."""
    texts = getattr(queryset.model, "TEXTS", {})
    names = [name for name in fields if name not in texts]
    rows = queryset.order_by("pk").values(*names, **{name: text_value(texts[name]) for name in fields if name in texts})
    return [{name: row[name] for name in fields} for row in rows]


def contact_export(*, account: Account, email: str) -> dict:
    """Everything stored about a contact, as one JSON-ready document: the contact, its tags, lists and fields, its
    visitors, visits, page views, events and action runs. Raises ContactNotFound.

    Read in one transaction, so that the parts agree with each other."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        contact = contact_get_by_email(account=account, email=email)
        visitors = Visitor.objects.filter(contact=contact)
        visitor_pks = list(visitors.values_list("pk", flat=True))
        utm = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
        document = {
            "format": EXPORT_FORMAT,
            "account": account.slug,
            "contact": {
                "id": contact.pk,
                "email": contact.email,
                "score": contact.score,
                "fields": contact.fields,
                "created_at": contact.created_at,
                "identified_at": contact.identified_at,
            },
            "tags": list(contact.tags.order_by("name").values_list("name", flat=True)),
            "lists": list(contact.lists.order_by("name").values_list("name", flat=True)),
            "visitors": _rows(visitors, "id", "uid", "created_at", "last_seen_at"),
            "visits": _rows(
                Session.objects.filter(visitor_id__in=visitor_pks),
                "id",
                "visitor_id",
                "started_at",
                "last_seen_at",
                "landing_url",
                "referrer",
                "channel",
                *utm,
            ),
            "impressions": _rows(
                Impression.objects.filter(session__visitor_id__in=visitor_pks),
                "id",
                "visitor_id",
                "session_id",
                "occurred_at",
                "url",
                "title",
                "referrer",
                "channel",
                *utm,
            ),
            "events": [
                {**row, "custom_event": row.pop("custom_event__slug")}
                for row in _rows(
                    EventRecord.objects.filter(contact=contact),
                    "id",
                    "custom_event__slug",
                    "source",
                    "occurred_at",
                    "visitor_id",
                    "session_id",
                    "page_url",
                    "marketing_channel",
                    "marketing_source_name",
                    "metadata",
                    "metadata_dropped",
                    "is_conversion",
                    "attributed_impression_id",
                    *utm,
                )
            ],
            "action_runs": _rows(
                ActionRun.objects.filter(event_record__contact=contact),
                "id",
                "event_record_id",
                "action__kind",
                "status",
                "attempts",
                "result",
                "last_error",
                "created_at",
                "finished_at",
            ),
        }
    # Dates as ISO strings: the same document for the download, the command and the GraphQL JSON scalar.
    return json.loads(json.dumps(document, cls=DjangoJSONEncoder))

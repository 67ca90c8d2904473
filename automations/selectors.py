"""Reads for automations and the contact pages. Every function takes the account."""

import json
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from custom_events.models import CustomEvent
from paminga.models import Account
from tracking.models import Contact, ContactTag, EventRecord, Impression, Session, Visitor

from .models import Action, ActionRun

RUN_LOG_PAGE_SIZE = 50
TIMELINE_PAGE_SIZE = 100
CONTACT_SEARCH_MAX_LENGTH = 254


def action_list(*, account: Account, custom_event: CustomEvent) -> QuerySet[Action]:
    return Action.objects.filter(account=account, custom_event=custom_event).order_by("position", "id")


def action_get_or_404(*, account: Account, custom_event: CustomEvent, pk: int) -> Action:
    return get_object_or_404(Action, account=account, custom_event=custom_event, pk=pk)


def action_get_by_id(*, account: Account, pk: int) -> Action | None:
    return Action.objects.filter(account=account, pk=pk).select_related("custom_event").first()


def action_run_list(
    *, account: Account, custom_event: CustomEvent, status: str = "", before_id: int | None = None
) -> tuple[list[ActionRun], int | None]:
    """The event's most recent runs, newest first, one page at a time (keyset: the run log never counts rows).
    Returns (runs, the `before_id` of the next page or None)."""
    runs = ActionRun.objects.filter(account=account, custom_event=custom_event)
    if status:
        runs = runs.filter(status=status)
    if before_id:
        runs = runs.filter(pk__lt=before_id)
    page = list(runs.select_related("action", "event_record__contact").order_by("-pk")[: RUN_LOG_PAGE_SIZE + 1])
    more = len(page) > RUN_LOG_PAGE_SIZE
    page = page[:RUN_LOG_PAGE_SIZE]
    return page, (page[-1].pk if more else None)


def action_run_get_or_404(*, account: Account, custom_event: CustomEvent, pk: int) -> ActionRun:
    return get_object_or_404(ActionRun, account=account, custom_event=custom_event, pk=pk)


def contact_list(*, account: Account, query: str = "", include_anonymous: bool = False) -> QuerySet[Contact]:
    """Contacts, newest first, searched by email (a substring, case-insensitive; emails are stored lowercased)."""
    contacts = Contact.objects.filter(account=account)
    if not include_anonymous:
        contacts = contacts.filter(email__isnull=False)
    query = (query or "").strip().lower()[:CONTACT_SEARCH_MAX_LENGTH]
    if query:
        contacts = contacts.filter(email__contains=query)
    return contacts.order_by("-created_at", "-pk").prefetch_related(
        Prefetch("tags", queryset=ContactTag.objects.order_by("name"))
    )


def contact_get_or_404(*, account: Account, pk: int) -> Contact:
    return get_object_or_404(
        Contact.objects.prefetch_related(Prefetch("tags", queryset=ContactTag.objects.order_by("name")), "lists"),
        account=account,
        pk=pk,
    )


@dataclass(frozen=True)
class TimelineEntry:
    kind: str  # "impression" | "event" | "run"
    at: datetime
    item: object

    @property
    def metadata_json(self) -> str:
        metadata = getattr(self.item, "metadata", None)
        return "" if metadata is None else json.dumps(metadata, ensure_ascii=False, sort_keys=True)


def contact_timeline(
    *, account: Account, contact: Contact, before: datetime | None = None
) -> tuple[list[TimelineEntry], datetime | None]:
    """The contact's page views (through its visitors), custom events and action runs, newest first, merged into
    one list of at most TIMELINE_PAGE_SIZE entries. Returns (entries, the `before` of the next page or None)."""
    size = TIMELINE_PAGE_SIZE
    impressions = Impression.objects.filter(account=account, session__visitor__contact=contact)
    # Occurrences of a deleted event (being removed in the background) are gone at once.
    events = EventRecord.objects.filter(account=account, contact=contact, custom_event__deleted_at__isnull=True)
    runs = ActionRun.objects.filter(
        account=account, event_record__contact=contact, custom_event__deleted_at__isnull=True
    )
    if before is not None:
        impressions = impressions.filter(occurred_at__lt=before)
        events = events.filter(occurred_at__lt=before)
        runs = runs.filter(created_at__lt=before)
    entries = [
        *(
            TimelineEntry("impression", i.occurred_at, i)
            for i in impressions.select_related("url_text", "title_text").order_by("-occurred_at", "-pk")[: size + 1]
        ),
        *(
            TimelineEntry("event", e.occurred_at, e)
            for e in events.select_related("custom_event", "page_url_text").order_by("-occurred_at", "-pk")[: size + 1]
        ),
        *(
            TimelineEntry("run", r.created_at, r)
            for r in runs.select_related("action", "custom_event").order_by("-created_at", "-pk")[: size + 1]
        ),
    ]
    entries.sort(key=lambda entry: entry.at, reverse=True)
    more = len(entries) > size
    entries = entries[:size]
    return entries, (entries[-1].at if more else None)


def contact_data_counts(*, contact: Contact) -> dict[str, int]:
    """How many rows of each kind hold the contact: what erasing it deletes."""
    visitors = Visitor.objects.filter(contact=contact)
    return {
        "visitors": visitors.count(),
        "visits": Session.objects.filter(visitor__in=visitors).count(),
        "impressions": Impression.objects.filter(session__visitor__in=visitors).count(),
        "events": EventRecord.objects.filter(contact=contact).count(),
        "action_runs": ActionRun.objects.filter(event_record__contact=contact).count(),
        "tags": contact.tags.count(),
        "lists": contact.lists.count(),
    }

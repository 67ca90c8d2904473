from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from paminga.models import Account

from .models import CustomEvent, MarketingSource


def custom_event_list(*, account: Account) -> QuerySet[CustomEvent]:
    """The account's custom events; deleted ones (their rows still being removed) are gone already."""
    return CustomEvent.objects.filter(account=account, deleted_at__isnull=True).order_by("name", "slug")


def custom_event_list_with_counts(*, account: Account) -> QuerySet[CustomEvent]:
    """The account's events, each with `fires` (recorded occurrences) and `conversions` (those recorded as
    conversions), counted in the same query."""
    return custom_event_list(account=account).annotate(
        fires=Count("records"), conversions=Count("records", filter=Q(records__is_conversion=True))
    )


def custom_event_get(*, account: Account, slug: str) -> CustomEvent | None:
    return custom_event_list(account=account).filter(slug=slug).first()


def custom_event_slug_taken(*, account: Account, slug: str, exclude_pk: int | None = None) -> bool:
    return custom_event_list(account=account).filter(slug=slug).exclude(pk=exclude_pk).exists()


def custom_event_get_or_404(*, account: Account, pk: int) -> CustomEvent:
    return get_object_or_404(custom_event_list(account=account), pk=pk)


def marketing_source_list(*, account: Account) -> QuerySet[MarketingSource]:
    return MarketingSource.objects.filter(account=account, deleted_at__isnull=True).order_by("name")


def marketing_source_match(*, account: Account, name: str) -> MarketingSource | None:
    """Case-insensitive match of a source name against the account's marketing sources."""
    name = (name or "").strip()
    if not name:
        return None
    return marketing_source_list(account=account).filter(name__iexact=name).first()


def marketing_source_get_or_404(*, account: Account, pk: int) -> MarketingSource:
    return get_object_or_404(marketing_source_list(account=account), pk=pk)


def marketing_source_unmatched_names(*, account: Account, days: int = 30, limit: int = 20) -> list[dict]:
    """Source names that API events sent in the last `days` days but that match no configured marketing source,
    most frequent first: [{"name", "events", "last_seen"}]. They are candidates to add as marketing sources."""
    from datetime import timedelta

    from django.db.models import Max
    from django.utils import timezone

    # Through the account's reverse relation: custom_events sits below tracking and does not import it.
    return list(
        account.event_records.filter(
            occurred_at__gte=timezone.now() - timedelta(days=days),
            marketing_source__isnull=True,
        )
        .exclude(marketing_source_name="")
        .values("marketing_source_name")
        .annotate(events=Count("id"), last_seen=Max("occurred_at"))
        .order_by("-events", "marketing_source_name")
        .values("marketing_source_name", "events", "last_seen")[:limit]
    )


def marketing_source_named_event_count(*, account: Account, days: int = 30) -> int:
    """How many events in the last `days` days named a marketing source at all (matched or not): tells "every name
    matched" from "no event named one"."""
    from datetime import timedelta

    from django.utils import timezone

    return (
        account.event_records.filter(occurred_at__gte=timezone.now() - timedelta(days=days))
        .exclude(marketing_source_name="")
        .count()
    )


def custom_event_violations(*, account: Account, custom_event: CustomEvent, limit: int) -> list:
    """The newest metadata schema violations the event debugger lists for this event (through the account's reverse
    relation: custom_events sits below tracking and does not import it)."""
    from .metadata_schema import DEBUGGER_REASON

    entries = account.rejected_hits.filter(reason=DEBUGGER_REASON, slug=custom_event.slug)
    return list(entries.order_by("-created_at", "-id")[:limit])

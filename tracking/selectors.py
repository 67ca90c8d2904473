from django.db.models import Count, QuerySet

from custom_events.models import CustomEvent
from paminga.models import Account

from .models import EventRecord, Impression, RejectedHit

DEMO_ACCOUNT_SLUG = "demo"


def rejected_hit_list(*, account: Account, reason: str = "", slug: str = "", limit: int = 200) -> list[RejectedHit]:
    entries = RejectedHit.objects.filter(account=account)
    if reason:
        entries = entries.filter(reason=reason)
    if slug:
        entries = entries.filter(slug=slug)
    return list(entries.order_by("-created_at", "-id")[:limit])


def rejected_hit_counts(*, account: Account) -> dict[str, int]:
    rows = RejectedHit.objects.filter(account=account).values("reason").annotate(n=Count("id"))
    return {row["reason"]: row["n"] for row in rows}


def demo_account() -> Account | None:
    return Account.objects.filter(slug=DEMO_ACCOUNT_SLUG).first()


def custom_event_list_for_demo(*, account: Account) -> QuerySet[CustomEvent]:
    return CustomEvent.objects.filter(account=account, deleted_at__isnull=True).order_by("name")


def event_record_recent(*, account: Account, limit: int = 10) -> list[EventRecord]:
    return list(
        EventRecord.objects.filter(account=account, custom_event__deleted_at__isnull=True)
        .select_related("custom_event", "contact", "attributed_impression__url_text")
        .order_by("-occurred_at", "-id")[:limit]
    )


def impression_recent(*, account: Account, limit: int = 10) -> list[Impression]:
    return list(
        Impression.objects.filter(account=account)
        .select_related("visitor__contact", "url_text", "title_text")
        .order_by("-occurred_at", "-id")[:limit]
    )

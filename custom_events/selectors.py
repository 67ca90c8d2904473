from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from paminga.models import Account

from .models import CustomEvent, MarketingSource


def custom_event_list(*, account: Account) -> QuerySet[CustomEvent]:
    return CustomEvent.objects.filter(account=account).order_by("name", "slug")


def custom_event_get(*, account: Account, slug: str) -> CustomEvent | None:
    return CustomEvent.objects.filter(account=account, slug=slug).first()


def custom_event_slug_taken(*, account: Account, slug: str, exclude_pk: int | None = None) -> bool:
    return CustomEvent.objects.filter(account=account, slug=slug).exclude(pk=exclude_pk).exists()


def custom_event_get_or_404(*, account: Account, pk: int) -> CustomEvent:
    return get_object_or_404(CustomEvent, account=account, pk=pk)


def marketing_source_list(*, account: Account) -> QuerySet[MarketingSource]:
    return MarketingSource.objects.filter(account=account).order_by("name")


def marketing_source_match(*, account: Account, name: str) -> MarketingSource | None:
    """Case-insensitive match of a source name against the account's marketing sources."""
    name = (name or "").strip()
    if not name:
        return None
    return MarketingSource.objects.filter(account=account, name__iexact=name).first()


def marketing_source_get_or_404(*, account: Account, pk: int) -> MarketingSource:
    return get_object_or_404(MarketingSource, account=account, pk=pk)

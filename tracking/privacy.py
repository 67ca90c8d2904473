"""Visitors who asked not to be tracked: Global Privacy Control (`Sec-GPC: 1`) and, when the account opts in, Do Not
Track (`DNT: 1`). Their hits are answered and counted, never stored (docs/privacy.md)."""

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from paminga.models import Account

from .models import UntrackedHitCount

Reason = UntrackedHitCount.Reason


def untracked_hit_count(*, account: Account, reason: str, count: int = 1) -> None:
    """`count` more hits not recorded today (UTC) for this reason: one UPDATE, an INSERT on the day's first."""
    day = timezone.now().date()
    rows = UntrackedHitCount.objects.filter(account=account, day=day, reason=reason)
    if rows.update(count=F("count") + count):
        return
    try:
        with transaction.atomic():
            UntrackedHitCount.objects.create(account=account, day=day, reason=reason, count=count)
    except IntegrityError:
        # Another request created the day's row in between.
        rows.update(count=F("count") + count)


def hit_refused_for_privacy(*, request, account: Account) -> str | None:
    """The reason not to record this hit ("GPC" or "DNT"), counted, or None to record it. Only the headers the
    account honours count: the beacon checks navigator.globalPrivacyControl itself and sends nothing, so this
    catches browsers that send the header alone and senders that bypass the beacon."""
    reason = None
    # The beacon's own count-only request (an empty body) says `?gpc=1`, for browsers that set
    # navigator.globalPrivacyControl without sending the header.
    if account.honour_gpc and (request.headers.get("Sec-GPC", "").strip() == "1" or request.GET.get("gpc") == "1"):
        reason = Reason.GPC
    elif account.honour_dnt and request.headers.get("DNT", "").strip() == "1":
        reason = Reason.DNT
    if reason is not None:
        try:
            untracked_hit_count(account=account, reason=reason)
        except DatabaseError:
            pass  # the database cannot be reached: the hit is still not tracked, only its count is lost
    return reason


def untracked_hit_totals(*, account: Account, days: int = 30) -> list[dict]:
    """Per reason, the hits not recorded in the last `days` days and today, for the event debugger."""
    since = timezone.now().date() - timezone.timedelta(days=days)
    today = timezone.now().date()
    totals = {value: {"reason": value, "label": label, "total": 0, "today": 0} for value, label in Reason.choices}
    for reason, day, count in UntrackedHitCount.objects.filter(account=account, day__gte=since).values_list(
        "reason", "day", "count"
    ):
        if reason in totals:
            totals[reason]["total"] += count
            if day == today:
                totals[reason]["today"] += count
    return list(totals.values())

"""Visitors who asked not to be tracked: Global Privacy Control (`Sec-GPC: 1`) and, when the account opts in, Do Not
Track (`DNT: 1`). Their hits are answered and counted, never stored (docs/privacy.md). Bots' hits are counted the same
way (tracking.bots), through untracked_hit_note().
"""

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from paminga.models import Account

from .models import UntrackedHitCount

Reason = UntrackedHitCount.Reason

# Hits that are only counted may come far faster than people's (a crawler, a browser family that sends GPC), and a
# count written per hit would make them a flood of database writes on the capture path. Each process counts the
# first COUNT_EXACT such hits per account, reason and day one by one, then writes one in COUNT_SAMPLE with that
# weight: the debugger's figure is exact for a trickle and within COUNT_SAMPLE per process for a flood.
COUNT_EXACT = 100
COUNT_SAMPLE = 10

_seen: dict[tuple[int, str], int] = {}
_seen_day = None


def untracked_hit_note(*, account: Account, reason: str) -> None:
    """Counts one hit not recorded, sampled past COUNT_EXACT (see above). A database that cannot be reached costs the
    count, not the answer."""
    global _seen_day
    today = timezone.now().date()
    if today != _seen_day:
        _seen.clear()
        _seen_day = today
    key = (account.pk, reason)
    seen = _seen[key] = _seen.get(key, 0) + 1
    if seen <= COUNT_EXACT:
        weight = 1
    elif (seen - COUNT_EXACT) % COUNT_SAMPLE == 0:
        weight = COUNT_SAMPLE
    else:
        return
    try:
        untracked_hit_count(account=account, reason=reason, count=weight)
    except DatabaseError:
        pass


def untracked_counts_reset() -> None:
    """Forgets this process's sampling counters (tests)."""
    _seen.clear()


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
        untracked_hit_note(account=account, reason=reason)
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

"""Bots: hits from known bots and crawlers (by user agent) and from automated browsers (the beacon reports
navigator.webdriver) are answered and counted, never recorded, unless the account switches the filter off
(Account.filter_bots). docs/tracking.md, "Bots".

The user-agent list is crawlerdetect's: maintained upstream (the patterns of the PHP CrawlerDetect project), it knows
search engines, SEO and uptime crawlers, link previews, headless browsers and HTTP libraries (curl, python-requests),
and excludes the real browsers that carry bot-like words.
"""

from functools import lru_cache

from crawlerdetect import CrawlerDetect
from django.db import DatabaseError
from django.utils import timezone

from paminga.models import Account

from .models import UntrackedHitCount
from .privacy import untracked_hit_count

Reason = UntrackedHitCount.Reason

# Only the start of a user agent is matched: a bound on the regular expression's work and on the cache's memory.
USER_AGENT_MAX_LENGTH = 512
# A site's visitors share a few hundred distinct user agents, so nearly every hit is a cache hit: the regular
# expression (about 1,500 alternatives) runs once per user agent and process.
VERDICT_CACHE_SIZE = 4096
# Bots may send far more hits than people, and a count written per hit would make a flood of bot hits a flood of
# database writes. Each process counts the first COUNT_EXACT bot hits per account, reason and day one by one, then
# writes one in COUNT_SAMPLE with that weight: the debugger's figure is exact for a trickle and within COUNT_SAMPLE
# per process for a flood.
COUNT_EXACT = 100
COUNT_SAMPLE = 10

_detector = CrawlerDetect()
_seen: dict[tuple[int, str], int] = {}
_seen_day = None


@lru_cache(maxsize=VERDICT_CACHE_SIZE)
def user_agent_is_bot(user_agent: str) -> bool:
    """Whether crawlerdetect lists this user agent (already cut to USER_AGENT_MAX_LENGTH) as a bot's."""
    return _detector.is_crawler(user_agent)


def bot_reason(*, account: Account, user_agent: str, automated: bool) -> str | None:
    """Why a hit comes from a bot (an UntrackedHitCount reason), or None for a person (or the filter is off). An
    empty user agent is no verdict: browsers always send one, and server-side senders may send none."""
    if not account.filter_bots:
        return None
    if automated:
        return Reason.AUTOMATED_BROWSER
    if user_agent and user_agent_is_bot(user_agent[:USER_AGENT_MAX_LENGTH]):
        return Reason.BOT_USER_AGENT
    return None


def bot_hit_count(*, account: Account, reason: str) -> None:
    """Counts one bot hit in the event debugger, sampled past COUNT_EXACT (see above). A database that cannot be
    reached costs the count, not the answer."""
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


def bot_counts_reset() -> None:
    """Forgets this process's sampling counters (tests)."""
    _seen.clear()

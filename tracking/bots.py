"""Bots: hits from known bots and crawlers (by user agent) and from automated browsers (the beacon reports
navigator.webdriver) are answered and counted, never recorded, unless the account switches the filter off
(Account.filter_bots). docs/tracking.md, "Bots".

The user-agent list is crawlerdetect's: maintained upstream (the patterns of the PHP CrawlerDetect project), it knows
search engines, SEO and uptime crawlers, link previews, headless browsers and HTTP libraries (curl, python-requests),
and excludes the real browsers that carry bot-like words.
"""

from functools import lru_cache

from crawlerdetect import CrawlerDetect

from paminga.models import Account

from .models import UntrackedHitCount

Reason = UntrackedHitCount.Reason

# Only the start of a user agent is matched: a bound on the regular expression's work and on the cache's memory.
USER_AGENT_MAX_LENGTH = 512
# A site's visitors share a few hundred distinct user agents, so nearly every hit is a cache hit: the regular
# expression (about 1,500 alternatives) runs once per user agent and process.
VERDICT_CACHE_SIZE = 4096

_detector = CrawlerDetect()


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

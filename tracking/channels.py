"""The marketing channel of a visit, derived from its UTM parameters, ad click ids and referrer.

Rules, first match wins:
1. `utm_medium` (or, without one, a paid click id such as `gclid` in the landing URL) names the channel:
   cpc/ppc/paid → paid search (paid social when the source is a social network), email → email marketing,
   social → organic social, display/banner/cpm → display, affiliate, referral, video, event/webinar...;
   any other campaign → OTHER_CAMPAIGNS.
2. Without campaign parameters, the referrer's host: a search engine → organic search, a social network →
   organic social, a video platform → video hosting platform, a webmail → email marketing, another site →
   referral.
3. No referrer, or one from the account's own domains → direct traffic.
"""

from urllib.parse import parse_qsl, urlsplit

from custom_events.models import MarketingChannel as Channel

from .cors import host_matches, url_host_port
from .models import UTM_FIELDS, UTM_MAX_LENGTH

SEARCH = ("google.", "bing.", "duckduckgo.", "yahoo.", "baidu.", "yandex.", "ecosia.", "search.brave.", "qwant.")
SOCIAL = (
    "facebook.",
    "fb.",
    "instagram.",
    "linkedin.",
    "lnkd.in",
    "twitter.",
    "t.co",
    "x.com",
    "reddit.",
    "pinterest.",
    "tiktok.",
    "threads.net",
    "mastodon.",
    "bsky.",
)
VIDEO = ("youtube.", "youtu.be", "vimeo.", "wistia.", "twitch.")
WEBMAIL = ("mail.google.", "outlook.live.", "outlook.office.", "mail.yahoo.", "mail.proton.")

MEDIUM = {
    Channel.PAID_SEARCH: {"cpc", "ppc", "paid", "paidsearch", "paid-search", "paid_search", "sem", "search-ads"},
    Channel.PAID_SOCIAL: {"paid-social", "paidsocial", "paid_social", "social-paid", "social-ads"},
    Channel.EMAIL_MARKETING: {"email", "e-mail", "e_mail", "newsletter", "mail"},
    Channel.ORGANIC_SOCIAL: {"social", "social-network", "social-media", "sm", "organic-social"},
    Channel.DISPLAY_AD: {"display", "banner", "cpm", "expandable", "interstitial", "programmatic"},
    Channel.AFFILIATE: {"affiliate", "affiliates", "partner"},
    Channel.REFERRAL: {"referral", "link"},
    Channel.ORGANIC_SEARCH: {"organic", "seo"},
    Channel.VIDEO_HOSTING_PLATFORM: {"video"},
    Channel.VIRTUAL_EVENT: {"webinar", "virtual-event", "online-event"},
    Channel.PHYSICAL_EVENT: {"event", "tradeshow", "trade-show", "conference"},
    Channel.DIRECT_MAIL: {"direct-mail", "print", "qr"},
}
CLICK_IDS = {"gclid": Channel.PAID_SEARCH, "msclkid": Channel.PAID_SEARCH, "fbclid": Channel.PAID_SOCIAL}


def _host_in(host: str, names: tuple[str, ...]) -> bool:
    labels = host.split(".")
    # Match "google." at any label boundary (www.google.co.uk) and exact short hosts (t.co, x.com).
    for i in range(len(labels)):
        tail = ".".join(labels[i:])
        for name in names:
            if tail == name or (name.endswith(".") and tail.startswith(name)):
                return True
    return False


def utm_from_url(url: str) -> dict:
    """The UTM parameters of a page URL (empty strings for absent ones), each clipped to the stored length."""
    try:
        query = dict(parse_qsl(urlsplit(url).query))
    except ValueError:
        query = {}
    return {field: query.get(field, "")[:UTM_MAX_LENGTH] for field in UTM_FIELDS}


def channel_derive(*, utm: dict, referrer: str, page_url: str, own_domains: list[str]) -> str:
    medium = (utm.get("utm_medium") or "").strip().lower()
    source = (utm.get("utm_source") or "").strip().lower()
    if medium:
        for channel, mediums in MEDIUM.items():
            if medium in mediums:
                if channel == Channel.PAID_SEARCH and _host_in(source + ".", SOCIAL):
                    return Channel.PAID_SOCIAL
                return channel
        return Channel.OTHER_CAMPAIGNS
    try:
        params = {key for key, _ in parse_qsl(urlsplit(page_url).query)}
    except ValueError:
        params = set()
    for param, channel in CLICK_IDS.items():
        if param in params:
            return channel
    if any(utm.get(field) for field in UTM_FIELDS):
        return Channel.OTHER_CAMPAIGNS
    host, port = url_host_port(referrer)
    page_host, _ = url_host_port(page_url)
    if not host or host == page_host or host_matches(host=host, port=port, domains=own_domains):
        return Channel.DIRECT_TRAFFIC
    if _host_in(host, WEBMAIL):
        return Channel.EMAIL_MARKETING
    if _host_in(host, SEARCH):
        return Channel.ORGANIC_SEARCH
    if _host_in(host, SOCIAL):
        return Channel.ORGANIC_SOCIAL
    if _host_in(host, VIDEO):
        return Channel.VIDEO_HOSTING_PLATFORM
    return Channel.REFERRAL

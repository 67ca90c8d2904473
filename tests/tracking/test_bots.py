"""Bots on the collect endpoint (tracking/bots.py, tracking.capture.hit_from_bot): counted, never recorded, unless
the account switches the filter off."""

import json

import pytest

from paminga.services import account_update
from tests.factories import CustomEventFactory
from tracking import bots
from tracking.models import Contact, EventRecord, Impression, RejectedHit, Session, UntrackedHitCount, Visitor

pytestmark = pytest.mark.django_db

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:133.0) Gecko/20100101 Firefox/133.0"


def hit(n: int = 1, **fields) -> dict:
    body = {"type": "impression", "id": f"imp-{n:07d}", "visitor": "visitor-0001", "url": "https://acme.test/"}
    return {**body, **fields}


def post(client, account, body: dict, user_agent: str = ""):
    headers = {"HTTP_USER_AGENT": user_agent} if user_agent else {}
    return client.post(
        f"/collect/{account.site_key}",
        json.dumps(body),
        content_type="text/plain",
        HTTP_ORIGIN="https://acme.test",
        **headers,
    )


def nothing_stored() -> bool:
    return not any(m.objects.exists() for m in (Contact, Visitor, Session, Impression, EventRecord, RejectedHit))


def counts() -> list:
    return list(UntrackedHitCount.objects.order_by("reason").values_list("reason", "count"))


@pytest.mark.parametrize("user_agent", [GOOGLEBOT, HEADLESS, "curl/8.5.0", "python-requests/2.32.3"])
def test_a_crawler_user_agent_is_answered_counted_and_not_stored(client, account, user_agent):
    response = post(client, account, hit(), user_agent)

    assert response.status_code == 200
    assert response.json() == {"status": "not_tracked"}
    assert nothing_stored()
    assert counts() == [("BOT_USER_AGENT", 1)]


@pytest.mark.parametrize("user_agent", [CHROME, FIREFOX, ""])
def test_people_and_senders_without_a_user_agent_are_recorded(client, account, user_agent):
    response = post(client, account, hit(), user_agent)

    assert response.json()["status"] == "recorded"
    assert Impression.objects.count() == 1
    assert not UntrackedHitCount.objects.exists()


def test_an_automated_browser_is_counted_by_its_flag_whatever_its_user_agent(client, account):
    CustomEventFactory(account=account, slug="requested-demo")

    first = post(client, account, hit(1, automated=True), CHROME)
    second = post(
        client,
        account,
        {"type": "event", "id": "evt-0000002", "visitor": "visitor-0001", "slug": "requested-demo", "automated": True},
        CHROME,
    )

    assert first.json() == second.json() == {"status": "not_tracked"}
    assert nothing_stored()
    assert counts() == [("AUTOMATED_BROWSER", 2)]


def test_a_bot_hit_with_an_unknown_slug_is_counted_not_listed_as_the_sites_mistake(client, account):
    body = {"type": "event", "id": "evt-0000001", "visitor": "visitor-0001", "slug": "no-such-event"}

    response = post(client, account, body, GOOGLEBOT)

    assert response.json() == {"status": "not_tracked"}
    assert not RejectedHit.objects.exists()
    assert counts() == [("BOT_USER_AGENT", 1)]


def test_with_the_filter_off_bots_are_recorded_like_anyone(client, account):
    account_update(account=account, filter_bots=False)

    post(client, account, hit(1), GOOGLEBOT)
    post(client, account, hit(2, automated=True), CHROME)

    assert Impression.objects.count() == 2
    assert not UntrackedHitCount.objects.exists()


def test_the_filter_switch_is_on_the_account_settings_page(client_logged_in, account):
    page = client_logged_in.get("/settings/account/").content.decode()
    assert 'name="filter_bots"' in page and "checked" in page.split('name="filter_bots"')[1].split(">")[0]

    form = {
        "name": account.name,
        "domains": "acme.test",
        "time_zone": "UTC",
        "session_timeout_minutes": 30,
        "tracking_consent": "not_required",
        "retention_months": 25,
    }
    response = client_logged_in.post("/settings/account/", form)

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.filter_bots is False


def test_the_verdict_per_user_agent_is_cached_in_the_process(client, account):
    bots.user_agent_is_bot.cache_clear()

    for n in range(5):
        post(client, account, hit(n), GOOGLEBOT)

    info = bots.user_agent_is_bot.cache_info()
    assert (info.misses, info.hits) == (1, 4)


def test_a_flood_is_counted_exactly_at_first_then_sampled(client, account, monkeypatch):
    from tracking import privacy

    monkeypatch.setattr(privacy, "COUNT_EXACT", 3)
    monkeypatch.setattr(privacy, "COUNT_SAMPLE", 5)
    writes = []
    original = privacy.untracked_hit_count
    monkeypatch.setattr(privacy, "untracked_hit_count", lambda **kw: (writes.append(kw["count"]), original(**kw)))

    for n in range(3 + 12):
        post(client, account, hit(n), GOOGLEBOT)

    # then: 3 exact writes, then one write of 5 per 5 hits (12 hits past the first 3: two writes, 2 hits pending)
    assert writes == [1, 1, 1, 5, 5]
    assert counts() == [("BOT_USER_AGENT", 13)]


def test_the_event_debugger_shows_the_bot_counts(client_logged_in, client, account):
    post(client, account, hit(1), GOOGLEBOT)
    post(client, account, hit(2), GOOGLEBOT)
    post(client, account, hit(3, automated=True), CHROME)

    body = client_logged_in.get("/settings/account/event-debugger/").content.decode()

    for reason, count in (("BOT_USER_AGENT", 2), ("AUTOMATED_BROWSER", 1)):
        row = body[body.index(f'id="untracked-{reason}"') :].split("</tr>")[0]
        assert row.count(f'<td class="num">{count}</td>') == 2


def test_the_automated_flag_is_not_queued_so_a_queued_hit_reads_the_same_to_the_previous_ingester():
    from datetime import UTC, datetime

    from tracking.hits import Hit
    from tracking.items import HitItem, item_dumps, item_loads

    item = HitItem(account_id=1, received_at=datetime(2026, 6, 1, tzinfo=UTC), hit=Hit("impression", "imp-1", "v-1"))

    raw = item_dumps(item)

    assert "automated" not in raw
    assert item_loads(raw) == item

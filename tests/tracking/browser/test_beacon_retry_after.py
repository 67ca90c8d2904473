"""The beacon in Chromium honours the collect endpoint's 429: it waits the Retry-After the server gave (read across
origins), then sends the hit again, and the hit is recorded once."""

import time

import pytest

from paminga.ratelimit import Limit, rate_limit_hit
from tests.factories import AccountFactory
from tracking.models import Impression

from .conftest import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WINDOW = 4


@pytest.fixture
def account(db):
    return AccountFactory(name="Acme", slug="acme", domains=["127.0.0.1"])


def test_the_beacon_waits_for_retry_after_then_sends_the_hit_again(page, account, app_server, site_server, settings):
    # given: the site key's limit for this window is used up, early in the window so the page's hit falls in it
    settings.RATE_LIMIT_COLLECT_PER_SITE_KEY = f"1/{WINDOW}"
    while time.time() % WINDOW > 0.5:
        time.sleep(0.05)
    rate_limit_hit(scope="collect-site", subject=account.site_key, limit=Limit(1, WINDOW))
    beacon = f'<script async src="{app_server.url}/beacon/{account.site_key}.js"></script>'
    site_server.pages["/limited.html"] = f"<!doctype html><html><head><title>Limited</title>{beacon}</head></html>"
    collect = {"url_or_predicate": lambda r: "/collect/" in r.url, "timeout": (WINDOW + 5) * 1000}

    # when
    with page.expect_response(**collect) as first:
        page.goto(site_server.url + "/limited.html")
    refused, refused_at = first.value, time.monotonic()
    with page.expect_response(**collect) as second:
        pass
    accepted, accepted_at = second.value, time.monotonic()

    # then: a 429 with Retry-After, then (no sooner than it said) the same hit, accepted
    assert (refused.status, accepted.status) == (429, 200)
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW
    # Without Retry-After the first retry would come after 1 s.
    assert accepted_at - refused_at >= retry_after - 0.3
    wait_until(lambda: Impression.objects.count() == 1, what="the hit recorded")
    assert Impression.objects.get().url == site_server.url + "/limited.html"

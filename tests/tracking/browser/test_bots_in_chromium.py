"""An automated browser (navigator.webdriver, as Playwright's Chromium has it) on a customer's page: its hits are
counted, not recorded, unless the account switches the bot filter off.

The other browser tests' Chromium poses as a person (tests/browser.py); this one keeps Playwright's automation flag,
with a person's user agent so that only navigator.webdriver can give it away."""

import time

import pytest

from paminga.services import account_update
from tests.browser import CHROMIUM, HEADLESS_ARGS, PERSON_USER_AGENT
from tests.factories import AccountFactory, CustomEventFactory
from tracking.models import Contact, EventRecord, Impression, RejectedHit, UntrackedHitCount, Visitor

from .conftest import DB_LOCK, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def automated_browser(browser):
    # The same Playwright as the `browser` fixture's (one sync Playwright per thread), Chromium as Playwright sets it.
    instance = browser.browser_type.launch(executable_path=CHROMIUM, args=HEADLESS_ARGS)
    yield instance
    instance.close()


@pytest.fixture
def automated_page(automated_browser):
    context = automated_browser.new_context(user_agent=PERSON_USER_AGENT)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def account(db):
    account = AccountFactory(name="Acme", slug="acme", domains=["127.0.0.1"])
    CustomEventFactory(account=account, slug="requested-demo")
    return account


@pytest.fixture
def pricing(account, app_server, site_server):
    site_server.pages["/pricing.html"] = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Pricing</title>"
        f'<script async src="{app_server.url}/beacon/{account.site_key}.js"></script></head>'
        "<body><h1>Pricing</h1></body></html>"
    )
    return site_server.url + "/pricing.html"


def visit_and_fire(page, url: str) -> None:
    answers = []
    page.on("response", lambda r: answers.append(r.status) if "/collect/" in r.url else None)
    page.goto(url)
    page.wait_for_function("() => window.$__MA && window.$__MA.loaded")
    page.evaluate("() => $__MA.captureEvent('requested-demo', {metadata: {plan: 'pro'}})")
    deadline = time.monotonic() + 8
    while len(answers) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert answers == [200, 200]


def test_an_automated_browser_records_nothing_and_the_debugger_counts_it(automated_page, pricing, account):
    visit_and_fire(automated_page, pricing)

    assert automated_page.evaluate("() => navigator.webdriver") is True
    with DB_LOCK:
        assert [m.objects.count() for m in (Contact, Visitor, Impression, EventRecord, RejectedHit)] == [0] * 5
        assert list(UntrackedHitCount.objects.values_list("reason", "count")) == [("AUTOMATED_BROWSER", 2)]


def test_with_the_filter_off_the_automated_browser_records(automated_page, pricing, account):
    account_update(account=account, filter_bots=False)

    visit_and_fire(automated_page, pricing)

    wait_until(lambda: EventRecord.objects.count() == 1, what="the event")
    with DB_LOCK:
        assert Impression.objects.count() == 1
        assert EventRecord.objects.get().metadata == {"plan": "pro"}
        assert not UntrackedHitCount.objects.exists()


def test_the_tests_browser_poses_as_a_person(page, pricing, account):
    visit_and_fire(page, pricing)

    assert page.evaluate("() => [navigator.webdriver, navigator.userAgent]") == [False, PERSON_USER_AGENT]
    wait_until(lambda: EventRecord.objects.count() == 1, what="the event")

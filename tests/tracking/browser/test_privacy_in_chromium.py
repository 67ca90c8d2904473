"""Consent and Global Privacy Control in a real browser, on a page of another origin than the app."""

import time

import pytest

from paminga.services import account_update
from tests.factories import AccountFactory, CustomEventFactory
from tracking.models import Contact, EventRecord, Impression, RejectedHit, Session, UntrackedHitCount, Visitor

from .conftest import DB_LOCK, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def account(db):
    account = AccountFactory(name="Acme", slug="acme", domains=["127.0.0.1"])
    CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)
    return account


@pytest.fixture
def site(account, app_server, site_server):
    def add(path: str) -> str:
        site_server.pages[path] = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Pricing</title>"
            f'<script async src="{app_server.url}/beacon/{account.site_key}.js"></script></head>'
            "<body><h1>Pricing</h1></body></html>"
        )
        return site_server.url + path

    return add


def stored() -> dict:
    with DB_LOCK:
        return {
            m.__name__: m.objects.count() for m in (Contact, Visitor, Session, Impression, EventRecord, RejectedHit)
        }


def storage(page) -> dict:
    """What the site's origin holds: its cookies and its localStorage keys."""
    return {
        "cookies": {c["name"]: c["value"] for c in page.context.cookies()},
        "local": sorted(page.evaluate("() => Object.keys(localStorage)")),
    }


def watch_collect(page) -> list:
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/collect/" in r.url else None)
    return sent


def loaded(page):
    page.wait_for_function("() => window.$__MA && window.$__MA.loaded")


def test_consent_required_holds_everything_until_consent_then_sends_once(page, site, account):
    account_update(account=account, tracking_consent="required")
    sent = watch_collect(page)
    page.goto(site("/pricing.html"))
    loaded(page)

    # when: the page fires an event before the visitor answered the banner
    page.evaluate("() => $__MA.captureEvent('requested-demo', {metadata: {plan: 'pro'}})")
    time.sleep(0.5)

    # then: nothing sent, nothing stored anywhere
    assert sent == []
    assert sum(stored().values()) == 0
    assert storage(page) == {"cookies": {}, "local": []}
    assert page.evaluate("() => $__MA.consent()") is None

    # when: consent
    page.evaluate("() => $__MA.consent(true)")

    # then: the held impression and event arrive, once
    wait_until(lambda: EventRecord.objects.count() == 1 and Impression.objects.count() == 1, what="held hits")
    page.wait_for_function(f"() => JSON.parse(localStorage.getItem('__ma_q_{account.site_key}') || '[]').length === 0")
    time.sleep(0.3)
    assert stored() == {"Contact": 1, "Visitor": 1, "Session": 1, "Impression": 1, "EventRecord": 1, "RejectedHit": 0}
    assert len(sent) == 2
    record = EventRecord.objects.get()
    assert record.metadata == {"plan": "pro"} and record.attributed_impression_id == Impression.objects.get().pk
    held = storage(page)
    assert held["cookies"]["__ma_consent"] == "1" and held["cookies"]["__ma_vid"] == Visitor.objects.get().uid
    assert "__ma_vid" in held["local"]

    # when: the visitor withdraws consent
    page.evaluate("() => $__MA.consent(false)")
    page.evaluate("() => $__MA.captureEvent('requested-demo')")
    time.sleep(0.3)

    # then: the visitor id and the outbox are gone, the refusal remembered, nothing more sent
    after = storage(page)
    assert after["cookies"] == {"__ma_consent": "0"}
    assert after["local"] == []
    assert len(sent) == 2 and EventRecord.objects.count() == 1

    # and the choice is remembered on the next page: the banner need not ask again
    page.goto(site("/other.html"))
    loaded(page)
    time.sleep(0.3)
    assert page.evaluate("() => $__MA.consent()") is False
    assert len(sent) == 2 and Impression.objects.count() == 1


def test_consent_refused_before_any_hit_drops_what_was_held(page, site, account):
    account_update(account=account, tracking_consent="required")
    sent = watch_collect(page)
    page.goto(site("/pricing.html"))
    loaded(page)
    page.evaluate("() => { $__MA.captureEvent('requested-demo'); $__MA.consent(false); $__MA.consent(true); }")

    # the hits held before the refusal were dropped: consent(true) afterwards sends none of them
    wait_until(lambda: Visitor.objects.count() == 0, what="nothing")
    time.sleep(0.5)
    assert sent == [] and sum(stored().values()) == 0


def test_a_returning_visitor_who_consented_is_tracked_at_once(page, site, account):
    account_update(account=account, tracking_consent="required")
    page.goto(site("/pricing.html"))
    loaded(page)
    page.evaluate("() => $__MA.consent(true)")
    wait_until(lambda: Impression.objects.count() == 1, what="first page view")

    page.goto(site("/other.html"))

    wait_until(lambda: Impression.objects.count() == 2, what="second page view, without asking again")
    assert Visitor.objects.count() == 1


def test_global_privacy_control_is_not_tracked_and_is_counted(browser, site, account):
    account_update(account=account, honour_gpc=True)
    context = browser.new_context(extra_http_headers={"Sec-GPC": "1"})
    context.add_init_script("Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})")
    page = context.new_page()
    try:
        page.goto(site("/pricing.html"))
        loaded(page)
        page.evaluate("() => { $__MA.captureEvent('requested-demo'); $__MA.consent(true); }")

        wait_until(lambda: sum(UntrackedHitCount.objects.values_list("count", flat=True)) == 2, what="the count")
        time.sleep(0.3)
        assert sum(stored().values()) == 0
        assert storage(page) == {"cookies": {}, "local": []}
        assert list(UntrackedHitCount.objects.values_list("reason", "count")) == [("GPC", 2)]
    finally:
        context.close()

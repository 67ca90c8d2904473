"""The beacon in a real browser, on a page of another origin than the app, and what the app stored."""

import json

import pytest

from tests.factories import AccountFactory, ContactFactory, CustomEventFactory
from tracking.links import contact_link_make
from tracking.models import Contact, EventRecord, Impression, RejectedHit, Session, Visitor
from tracking.templatetags.tracking import beacon_snippet

from .conftest import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The spec's waiting pattern, verbatim (the test account has an event with the spec's slug).
SPEC_PATTERN = """let attempts = 0;
const maxAttempts = 200; // ~6 seconds at 30ms intervals
const id = setInterval(function () {
attempts += 1;
if (window.$__MA !== undefined) {
clearInterval(id);
$__MA.captureEvent('your-event-slug');
return;
}
if (attempts >= maxAttempts) {
clearInterval(id);
}
}, 30);"""


@pytest.fixture
def account(db):
    account = AccountFactory(name="Acme", slug="acme", domains=["127.0.0.1"])
    CustomEventFactory(account=account, slug="your-event-slug", counts_as_conversion=True)
    CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)
    CustomEventFactory(account=account, slug="watched-product-video", counts_as_conversion=False)
    return account


@pytest.fixture
def site(account, app_server, site_server):
    """Pages of the customer's site, with the beacon of `account` from the app server."""
    beacon = f'<script async src="{app_server.url}/beacon/{account.site_key}.js"></script>'

    def add(path: str, title: str, body: str = "", head: str | None = None) -> str:
        site_server.pages[path] = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"{beacon if head is None else head}</head><body><h1>{title}</h1>{body}</body></html>"
        )
        return site_server.url + path

    add.origin = site_server.url
    return add


def outbox_empty(page, account):
    """Waits until the beacon has been answered for every hit it holds (its localStorage outbox is empty)."""
    key = f"__ma_q_{account.site_key}"
    page.wait_for_function(
        f"() => window.$__MA && window.$__MA.loaded && JSON.parse(localStorage.getItem('{key}') || '[]').length === 0"
    )


def test_spec_pattern_metadata_and_conversion_attribution_from_another_origin(page, site, account):
    url = site("/pricing.html", "Pricing - Acme", body=f"<script>{SPEC_PATTERN}</script>")

    page.goto(url, referer="https://www.google.com/")
    wait_until(lambda: EventRecord.objects.count() == 1, what="the spec pattern's event")
    page.evaluate(
        """() => {
        $__MA.captureEvent('watched-product-video', {
          metadata: { videoTitle: 'Product Overview', percentWatched: 87, planTier: 'enterprise' }
        });
        $__MA.captureEvent('watched-product-video', { metadata: { notes: 'é'.repeat(3000) } });
      }"""
    )
    outbox_empty(page, account)

    visit = Session.objects.get()
    impression = Impression.objects.get()
    assert (impression.url, impression.title, impression.referrer) == (url, "Pricing - Acme", "https://www.google.com/")
    assert impression.channel == visit.channel == "ORGANIC_SEARCH"
    spec, video, too_big = EventRecord.objects.order_by("occurred_at", "id")
    assert spec.custom_event.slug == "your-event-slug" and spec.source == "beacon" and spec.page_url == url
    assert spec.is_conversion and spec.attributed_impression == impression and spec.session == visit
    assert video.metadata == {"videoTitle": "Product Overview", "percentWatched": 87, "planTier": "enterprise"}
    assert not video.metadata_dropped and not video.is_conversion and video.attributed_impression is None
    # Measured in the browser as UTF-8 JSON, dropped there, recorded with the flag and the size.
    assert (
        too_big.metadata is None and too_big.metadata_dropped and too_big.metadata_bytes == 6000 + len('{"notes":""}')
    )
    assert list(RejectedHit.objects.values_list("reason", "recorded")) == [("METADATA_DROPPED", True)]
    # One first-party visitor: the cookie on the customer's site is the id the app stored.
    cookie = next(c for c in page.context.cookies() if c["name"] == "__ma_vid")
    assert cookie["domain"] == "127.0.0.1" and Visitor.objects.get().uid == cookie["value"]
    assert {spec.visitor_id, video.visitor_id, impression.visitor_id} == {Visitor.objects.get().pk}


def test_calls_through_the_stub_before_the_beacon_loads_are_sent_in_order(page, site, account, app_server):
    snippet = beacon_snippet(account, base_url=app_server.url)
    stub, beacon = snippet.split("</script>", 1)
    early_calls = """<script>
      $__MA.captureEvent('watched-product-video', { metadata: { step: 1 } });
      $__MA.identify('Ada@Example.com');
      $__MA.captureEvent('requested-demo', { metadata: { step: 2 } });
      window.queuedBeforeLoad = $__MA.q.length;
    </script>"""
    url = site("/offer.html", "Spring offer", head=stub + "</script>" + early_calls + beacon)

    page.goto(url + "?utm_source=newsletter&utm_medium=email&utm_campaign=spring")
    outbox_empty(page, account)
    wait_until(lambda: EventRecord.objects.count() == 2, what="the two queued events")

    assert page.evaluate("window.queuedBeforeLoad") == 3
    contact = Contact.objects.get()
    assert contact.email == "ada@example.com"
    impression = Impression.objects.get()
    assert (impression.utm_source, impression.utm_medium, impression.utm_campaign) == ("newsletter", "email", "spring")
    assert impression.channel == "EMAIL_MARKETING" and impression.visitor.contact == contact
    video, demo = EventRecord.objects.order_by("occurred_at", "id")
    assert (video.custom_event.slug, video.metadata, video.contact) == ("watched-product-video", {"step": 1}, contact)
    assert (demo.custom_event.slug, demo.metadata, demo.contact) == ("requested-demo", {"step": 2}, contact)
    assert demo.attributed_impression == impression and demo.utm_campaign == "spring"
    assert demo.marketing_channel == "EMAIL_MARKETING"


def test_single_page_and_full_page_navigation(page, site, account):
    home = site("/app.html", "App home", body="<a id='next' href='/next.html'>Next</a>")
    next_page = site("/next.html", "Next page")

    page.goto(home)
    outbox_empty(page, account)
    page.evaluate(
        """() => {
        history.pushState({}, '', '/app/pricing');
        document.title = 'App pricing';
        $__MA.captureEvent('requested-demo');
      }"""
    )
    outbox_empty(page, account)
    page.evaluate("() => history.back()")
    wait_until(lambda: Impression.objects.count() == 3, what="the popstate impression")
    page.click("#next")
    page.wait_for_url(next_page)
    page.evaluate("() => $__MA.captureEvent('requested-demo')")
    outbox_empty(page, account)
    wait_until(lambda: EventRecord.objects.count() == 2, what="the second conversion")

    first, pricing, back, second = Impression.objects.order_by("occurred_at", "id")
    assert (first.url, first.title) == (home, "App home")
    assert (pricing.url, pricing.title, pricing.referrer) == (site.origin + "/app/pricing", "App pricing", home)
    assert (back.url, back.referrer) == (home, site.origin + "/app/pricing")
    assert (second.url, second.title, second.referrer) == (next_page, "Next page", home)
    spa_conversion, page_conversion = EventRecord.objects.order_by("occurred_at", "id")
    assert spa_conversion.attributed_impression == pricing
    assert spa_conversion.page_url == site.origin + "/app/pricing"
    assert page_conversion.attributed_impression == second
    assert Session.objects.count() == 1 and Visitor.objects.count() == 1 and Contact.objects.count() == 1


def test_failed_hits_are_kept_retried_flushed_and_resent_from_the_next_page(page, site, account):
    url = site("/retry.html", "Retry")
    next_page = site("/next.html", "Next page")
    key = f"__ma_q_{account.site_key}"
    held = f"() => JSON.parse(localStorage.getItem('{key}') || '[]')"
    page.route("**/collect/**", lambda route: route.abort())

    # Offline: the hits stay in the localStorage outbox and are retried with backoff until they get through.
    page.goto(url)
    page.evaluate("() => $__MA.captureEvent('requested-demo', { metadata: { attempt: 'offline' } })")
    page.wait_for_function(f"() => ((({held})())[0]._n || 0) >= 1")
    assert [h["type"] for h in page.evaluate(held)] == ["impression", "event"] and Impression.objects.count() == 0
    page.unroute("**/collect/**")
    outbox_empty(page, account)

    impression = Impression.objects.get()
    offline = EventRecord.objects.get()
    assert impression.url == url and offline.metadata == {"attempt": "offline"}
    assert offline.attributed_impression == impression

    # Pending hits (one waiting for its retry, one never sent) go out with sendBeacon when the page is hidden or
    # left (spied on through sessionStorage).
    page.route("**/collect/**", lambda route: route.abort())
    page.evaluate(
        """() => {
        $__MA.captureEvent('watched-product-video', { metadata: { n: 1 } });
        $__MA.captureEvent('watched-product-video', { metadata: { n: 2 } });
      }"""
    )
    page.wait_for_function(f"() => ((({held})())[0]._n || 0) >= 1")
    page.unroute("**/collect/**")
    page.evaluate(
        """() => {
        const send = navigator.sendBeacon.bind(navigator);
        navigator.sendBeacon = (url, data) => {
          sessionStorage.setItem('beacons', (sessionStorage.getItem('beacons') || '') + data + '\\n');
          return send(url, data);
        };
        window.dispatchEvent(new Event('pagehide'));
      }"""
    )
    wait_until(lambda: EventRecord.objects.count() == 3, what="the events flushed with sendBeacon")
    beaconed = [json.loads(line) for line in page.evaluate("sessionStorage.getItem('beacons')").split()]
    assert [(b["metadata"], "retry" in b) for b in beaconed] == [({"n": 1}, True), ({"n": 2}, False)]

    # They stay in the outbox (sendBeacon cannot tell whether they arrived): the next page sends them again, and the
    # server recognises the retries: nothing recorded twice, nothing for the debugger.
    assert len(page.evaluate(held)) >= 1
    page.goto(next_page)
    outbox_empty(page, account)

    flushed = EventRecord.objects.filter(custom_event__slug="watched-product-video")
    assert sorted(r.metadata["n"] for r in flushed) == [1, 2]
    assert Impression.objects.count() == 2 and EventRecord.objects.count() == 3
    assert RejectedHit.objects.count() == 0


def test_signed_contact_link_identifies_the_visitor_and_leaves_the_address_bar(page, site, account):
    ada = ContactFactory(account=account, email="ada@example.com")
    url = site("/welcome.html", "Welcome")
    link = contact_link_make(contact=ada, url=url + "?ref=mail")

    page.goto(link)
    outbox_empty(page, account)

    assert page.url == url + "?ref=mail"
    assert Impression.objects.get().url == url + "?ref=mail"
    assert Visitor.objects.get().contact == ada and Contact.objects.count() == 1


def test_a_site_missing_from_the_domains_is_refused_once_per_hit(page, site, account):
    account.domains = ["www.example.test"]
    account.save()
    url = site("/elsewhere.html", "Elsewhere")

    page.goto(url)
    page.evaluate("() => $__MA.captureEvent('requested-demo')")
    # The beacon reads the 403 and drops the hits instead of retrying them.
    outbox_empty(page, account)

    assert Impression.objects.count() == EventRecord.objects.count() == Visitor.objects.count() == 0
    assert list(RejectedHit.objects.values_list("reason", flat=True)) == ["FORBIDDEN_ORIGIN", "FORBIDDEN_ORIGIN"]

"""Every page under the Content-Security-Policy in a real Chromium: it works, and the browser reports no violation
(an inline script or handler without the nonce would be one). GraphiQL included, running a query."""

from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.factories import AccountFactory, CustomEventFactory, EventRecordFactory, MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = [
    "/settings/account/",
    "/settings/account/custom-events/",
    "/settings/account/custom-events/new/",
    "/settings/account/api-keys/",
    "/settings/account/marketing-sources/",
    "/settings/account/event-debugger/",
    "/automations/custom-events/",
    "/automations/conversions/",
    "/contacts/",
    "/demo/",
]
# With the event's id: its report, actions and runs.
EVENT_PAGES = [
    "/automations/custom-events/{pk}/report/",
    "/automations/custom-events/{pk}/actions/",
    "/automations/custom-events/{pk}/runs/",
    "/settings/account/custom-events/{pk}/edit/",
]


@pytest.fixture
def session_cookie(client, user, account):
    # Data and login before the browser starts (see tests/graphql/test_graphiql_browser.py).
    import io

    event = CustomEventFactory(account=account, name="Watched Product Video", slug="watched-product-video")
    EventRecordFactory.create_batch(2, custom_event=event)
    # Two accounts: the top bar's account switcher (a script of ours) is on every page.
    MembershipFactory(user=user, account=AccountFactory(name="Globex", slug="globex"))
    call_command("seed_demo", "--no-history", stdout=io.StringIO())
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    cookie_and_pages = type(
        "Session", (), {"cookie": cookie, "event_pages": [p.format(pk=event.pk) for p in EVENT_PAGES]}
    )
    return cookie_and_pages


@pytest.fixture
def logged_in(live_server, session_cookie):
    require_chromium()
    from playwright.sync_api import sync_playwright

    server = urlsplit(live_server.url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()
        cookie = {
            "name": settings.SESSION_COOKIE_NAME,
            "value": session_cookie.cookie,
            "domain": server.hostname,
            "path": "/",
        }
        context.add_cookies([cookie])
        page = context.new_page()
        page.violations = []
        page.event_pages = session_cookie.event_pages
        page.on("console", lambda m: "Content Security Policy" in m.text and page.violations.append(m.text))
        page.on("pageerror", lambda exc: page.violations.append(f"page error: {exc}"))
        yield page
        browser.close()


def _listen_for_violations(page):
    page.evaluate(
        "() => { window.__cspViolations = [];"
        " document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push("
        "e.violatedDirective + ' ' + e.blockedURI)); }"
    )


def test_every_page_has_a_policy_and_no_violation(live_server, logged_in):
    page = logged_in
    for path in PAGES + page.event_pages:
        response = page.goto(live_server.url + path)
        assert response.status == 200, path
        # The nonce is in the policy only on pages with an inline script (django-csp adds it when a page uses it).
        script_src = response.headers["content-security-policy"].split("script-src", 1)[1].split(";", 1)[0]
        assert script_src.startswith(" 'self'") and "unsafe" not in script_src, (path, script_src)
        page.wait_for_load_state("load")
        assert page.violations == [], (path, page.violations)


def test_the_account_switcher_works_without_inline_handlers(live_server, logged_in):
    page = logged_in
    page.goto(live_server.url + "/settings/account/")
    _listen_for_violations(page)
    with page.expect_navigation():
        page.select_option("#account-select", label="Globex")
    assert "Switched to Globex" in page.inner_text(".messages")
    assert page.violations == []


def test_graphiql_runs_a_query_under_the_policy(live_server, logged_in):
    page = logged_in
    response = page.goto(live_server.url + "/graphql/")
    assert "content-security-policy" in response.headers
    page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=20_000)
    page.click(".graphiql-execute-button")
    page.wait_for_function(
        "() => document.querySelector('.result-window') && "
        "document.querySelector('.result-window').innerText.includes('watched-product-video')",
        timeout=20_000,
    )
    assert page.violations == []

"""GraphiQL in a real Chromium: it loads from our own static files (no request leaves the server), and a query typed
into it runs for the logged-in user's account through the session and CSRF token."""

import os
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.factories import CustomEventFactory, EventRecordFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def session_cookie(client, user, account):
    """The data and the login, made before the browser starts: once Playwright's event loop runs in this thread,
    Django would open (and leave open) a second database connection for any query made here."""
    event = CustomEventFactory(account=account, name="Watched Product Video", slug="watched-product-video")
    EventRecordFactory.create_batch(2, custom_event=event)
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def chromium(session_cookie):
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_graphiql_loads_without_any_external_request_and_runs_a_query(live_server, session_cookie, chromium):
    server = urlsplit(live_server.url)
    context = chromium.new_context()
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": session_cookie,
                "domain": server.hostname,
                "path": "/",
            }
        ]
    )
    page = context.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    console_errors = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))

    # when
    page.goto(f"{live_server.url}/graphql/")
    page.wait_for_selector(".graphiql-container", timeout=20_000)
    page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=20_000)
    page.click(".graphiql-execute-button")
    page.wait_for_function(
        "() => document.querySelector('.result-window') && "
        "document.querySelector('.result-window').innerText.includes('watched-product-video')",
        timeout=20_000,
    )

    # then
    result = page.inner_text(".result-window")
    assert '"fires": 2' in result and '"name": "Watched Product Video"' in result
    assert page.inner_text("#graphiql-account") == "Acme"
    foreign = [
        url for url in requests if urlsplit(url).netloc not in (server.netloc, "") and urlsplit(url).scheme != "data"
    ]
    assert foreign == []
    assert any(url.endswith("/graphql/") for url in requests)  # the query went to our endpoint
    assert console_errors == []
    if os.environ.get("GRAPHIQL_SCREENSHOT"):
        page.screenshot(path=os.environ["GRAPHIQL_SCREENSHOT"])
    context.close()

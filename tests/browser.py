"""Shared Playwright set-up: the system Chromium, never a downloaded browser.

Without Chromium (or Playwright) browser tests skip with the reason, unless REQUIRE_BROWSER=1, when they fail.
"""

import os

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# The tests' browser stands for a person's: the beacon and the collect endpoint filter bots (tracking/bots.py), and
# a Chromium driven by Playwright is one by both signs: its user agent says HeadlessChrome and navigator.webdriver
# is true. So the tests' Chromium sends a desktop Chrome user agent and hides the automation flag, and the bot
# filter stays on in the tests as it is in production; tests/tracking/browser/test_bots_in_chromium.py drives a
# browser that shows both signs.
PERSON_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
HEADLESS_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CHROMIUM_ARGS = [
    *HEADLESS_ARGS,
    "--disable-blink-features=AutomationControlled",
    f"--user-agent={PERSON_USER_AGENT}",
]


def require_chromium() -> None:
    """Skip (or fail, when REQUIRE_BROWSER=1) when Chromium or Playwright is missing."""
    reason = None
    if not os.path.exists(CHROMIUM):
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "Playwright for Python is not installed (pip install -e '.[dev]')"
    if reason is None:
        return
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make are still synchronous.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()

"""Every page of the nav, the demo site and an event report in a real Chromium, at a laptop's and a phone's width:
nothing sticks out of the window except inside a box that scrolls, and the console stays free of errors."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from automations.reports.seed import demo_history_create
from automations.reports.services import report_rollups_update
from paminga.models import Account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = [(1280, 800), (390, 844)]

# Elements reaching past the window's edges, unless an ancestor scrolls sideways (a table's .table-scroll box,
# a <pre>, the report menu): those are reachable, not cut off.
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const x = getComputedStyle(p).overflowX;
      if (x === 'auto' || x === 'scroll') return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if ((box.right > width + 1 || box.left < -1) && !scrolls(el)) {
      out.push(`${el.tagName.toLowerCase()}.${el.className} ${Math.round(box.left)}..${Math.round(box.right)}`);
    }
  }
  return {page: document.documentElement.scrollWidth - width, elements: out.slice(0, 5)};
}"""


@pytest.fixture
def demo():
    call_command("seed_demo", "--no-history", stdout=io.StringIO())
    account = Account.objects.get(slug="demo")
    demo_history_create(account=account, events=400, days=20, random_seed=2, end=timezone.now() - timedelta(hours=1))
    report_rollups_update(now=timezone.now() + timedelta(minutes=2))
    return account


def log_in(browser, live_server, viewport):
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = context.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "demo@paminga.local")
    page.fill("input[name=password]", "paminga-demo")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return context, page, errors


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda v: f"{v[0]}px")
def test_pages_fit_the_window_without_console_errors(browser, live_server, demo, viewport):
    context, page, errors = log_in(browser, live_server, viewport)
    try:
        nav = page.eval_on_selector_all(".mainnav a", "links => links.map(a => a.getAttribute('href'))")
        event = demo.custom_events.get(slug="requested-demo")
        paths = [*nav, "/demo/", f"/automations/custom-events/{event.pk}/report/", "/automations/"]
        assert len(nav) == 8

        problems = {}
        for path in paths:
            errors.clear()
            response = page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("networkidle")
            assert response.status == 200, path
            found = page.evaluate(OVERFLOWING)
            if found["page"] > 0 or found["elements"] or errors:
                problems[path] = {**found, "console": list(errors)}

        assert problems == {}
    finally:
        context.close()


def test_the_served_snippet_names_the_port_it_was_served_on(browser, live_server, demo, settings):
    settings.SITE_URL = ""
    context, page, _errors = log_in(browser, live_server, VIEWPORTS[0])
    try:
        page.goto(f"{live_server.url}/settings/account/")
        snippet = page.locator("pre.snippet").inner_text()
    finally:
        context.close()

    assert live_server.url.rsplit(":", 1)[1] not in ("80", "8000")
    assert f'<script async src="{live_server.url}/beacon/{demo.site_key}.js"></script>' in snippet

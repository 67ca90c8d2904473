"""The report pages in a real Chromium: metadata and other recorded text cannot run script, and the charts are
readable (a screenshot of each is saved for a person to look at)."""

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from automations.reports.services import report_rollups_update
from tests.factories import EventRecordFactory, MembershipFactory, UserFactory

from .reports_fixtures import build_history, utc

PASSWORD = "correct horse battery staple"
# Where the chart screenshots go (the test's temporary directory unless set).
SCREENSHOT_DIR = os.environ.get("REPORT_SCREENSHOT_DIR")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(browser, live_server, username):
    # `browser` is the shared Chromium of tests/browser.py (skipped without Chromium unless REQUIRE_BROWSER=1).
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page, dialogs


@pytest.fixture
def history():
    h = build_history()
    user = UserFactory(username="owner@acme.test")
    MembershipFactory(user=user, account=h.account)
    h.username = user.username
    return h


XSS = '<script>window.__xss = "metadata"; alert("metadata")</script><img src=x onerror="window.__xss=\'img\'">'


def test_recorded_text_is_shown_escaped_and_never_runs(browser, live_server, history):
    EventRecordFactory(
        account=history.account,
        custom_event=history.demo,
        contact=history.contacts["c2"],
        occurred_at=utc(2026, 3, 8, 15),
        page_url='https://acme.test/"><script>window.__xss="page"</script>',
        utm_source="<svg onload=\"window.__xss='utm'\">",
        metadata={"note": XSS, "<b>key</b>": "<i>value</i>"},
    )
    report_rollups_update(now=timezone.now() + timedelta(minutes=2))
    page, dialogs = log_in(browser, live_server, history.username)

    page.goto(
        f"{live_server.url}/automations/custom-events/{history.demo.pk}/report/?start=2026-03-06&end=2026-03-08&key=note"
    )

    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    # No element was injected: the page's only scripts are our own static files (the account switcher), and no
    # <img> or <svg onload> at all.
    injected = "document.querySelectorAll(`script:not([src^='/static/']), img, [onload], [onerror]`).length"
    assert page.evaluate(injected) == 0
    occurrences = page.locator("#occurrences-table").inner_text()
    assert json.dumps(XSS) in occurrences  # the metadata as JSON, tags and all, as text
    assert '"<b>key</b>": "<i>value</i>"' in occurrences
    assert 'https://acme.test/"><script>window.__xss="page"</script>' in occurrences
    # The metadata breakdown shows the value as text too, and the key picker offers the HTML key as text.
    assert XSS in page.locator("#metadata-table").inner_text()
    assert "<b>key</b>" in page.locator("#meta-breakdown-key").inner_text()
    page.goto(f"{live_server.url}/automations/custom-events/{history.demo.pk}/report/?start=2026-03-06&end=2026-03-08")
    utm_sources = page.locator('section[aria-labelledby="bd-utm_source"]').inner_text()
    assert "<svg onload=\"window.__xss='utm'\">" in utm_sources
    assert page.evaluate("window.__xss") is None and dialogs == []


def test_charts_are_readable(browser, live_server, history, tmp_path):
    # Four weeks of a steady event, so the chart has bars, a line and several date labels.
    for day in range(28):
        for n in range(1 + day % 5):
            EventRecordFactory(
                account=history.account,
                custom_event=history.demo,
                contact=history.contacts["c1"],
                occurred_at=utc(2026, 2, 2, 15, n) + timedelta(days=day),
                is_conversion=n % 2 == 0,
            )
    report_rollups_update(now=timezone.now() + timedelta(minutes=2))
    page, dialogs = log_in(browser, live_server, history.username)
    shots = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    shots.mkdir(parents=True, exist_ok=True)

    page.goto(f"{live_server.url}/automations/custom-events/{history.demo.pk}/report/?start=2026-02-02&end=2026-03-08")
    chart = page.locator(".chart-card svg.chart").first
    chart.screenshot(path=str(shots / "event-daily-chart.png"))
    box = chart.bounding_box()
    assert box["width"] > 700 and box["height"] > 200
    # Every day with fires has a visible bar; the legend names both series; the axes are labelled.
    bars = page.evaluate(
        "[...document.querySelectorAll('.chart-card svg.chart rect.day-bar[fill=\"#4b3fd9\"]')]"
        ".filter(r => r.getBBox().height > 0).length"
    )
    assert bars == 28 + 3  # 2 February to 1 March, and 6, 7 and 8 March (the fixture's records)
    texts = page.evaluate("[...document.querySelectorAll('.chart-card svg.chart text')].map(t => t.textContent)")
    assert "Fires" in texts and "Conversions" in texts
    assert "Feb 2" in texts and "0" in texts
    # Date labels never overlap.
    boxes = page.evaluate(
        "[...document.querySelectorAll('.chart-card svg.chart text[text-anchor=middle]')]"
        ".map(t => { const b = t.getBoundingClientRect(); return [b.left, b.right]; })"
    )
    assert len(boxes) >= 5
    assert all(a[1] < b[0] for a, b in zip(boxes, boxes[1:], strict=False))
    # A tooltip per day.
    assert (
        page.locator(".chart-card svg.chart rect.hover title").first.text_content() == "Feb 2: 1 fires, 1 conversions"
    )

    page.goto(f"{live_server.url}/automations/custom-events/?start=2026-02-02&end=2026-03-08")
    page.locator("#events-table").screenshot(path=str(shots / "overview-table.png"))
    assert page.locator("#events-table svg.sparkline").count() == 2
    page.goto(f"{live_server.url}/automations/conversions/?start=2026-02-02&end=2026-03-08")
    page.locator(".chart-card").screenshot(path=str(shots / "conversions-chart.png"))
    assert dialogs == []
    for name in ("event-daily-chart.png", "overview-table.png", "conversions-chart.png"):
        assert (shots / name).stat().st_size > 5000
    if SCREENSHOT_DIR is None:
        shutil.rmtree(shots, ignore_errors=True)

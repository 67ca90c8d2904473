"""The Automations pages in a real browser (the system Chromium through Playwright, tests/browser.py): configure an
action, see it run in the run log, and see what it did on the contact's page — hostile metadata shown, never run."""

import pytest
from django.db import transaction
from pytest_django.live_server_helper import LiveServer

from tests.factories import ContactFactory, CustomEventFactory, MembershipFactory, UserFactory
from tracking.ingest import event_record

pytestmark = [pytest.mark.browser]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def live_server_in_range(transactional_db):
    """A live server on a port of this app's test range (8360-8379)."""
    error = None
    for port in range(8360, 8380):
        try:
            server = LiveServer(f"127.0.0.1:{port}")
        except OSError as exc:
            error = exc
            continue
        yield server
        server.stop()
        return
    raise error


def test_configure_an_action_and_see_what_it_did(live_server_in_range, page):
    user = UserFactory(username="owner@acme.test")
    membership = MembershipFactory(user=user)
    account = membership.account
    event = CustomEventFactory(account=account, name="Requested Demo", slug="requested-demo")
    contact = ContactFactory(account=account, email="jane@example.com")
    base = live_server_in_range.url
    page.set_default_timeout(10_000)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "owner@acme.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")

    # From the event's settings to its actions, as a marketer would.
    page.goto(f"{base}/settings/account/custom-events/")
    page.click("tbody a:text-is('Actions')")
    page.select_option("#id_kind", "change_score")
    page.click("text=Add action…")
    page.fill("#id_delta", "10")
    page.fill("#id_condition_key", "planTier")
    page.fill("#id_condition_value", "enterprise")
    page.click("button:has-text('Add action')")
    assert page.locator(".message.success").inner_text() == "Action “Change lead score” added to Requested Demo."
    page.select_option("#id_kind", "add_tag")
    page.click("text=Add action…")
    page.fill("#id_tag", "<b>hot</b>")
    page.check("#id_enabled")
    page.click("button:has-text('Add action')")
    rows = page.locator("#actions tbody tr")
    assert rows.count() == 2
    assert "Change score by +10" in rows.nth(0).inner_text()
    assert "planTier equals “enterprise”" in rows.nth(0).inner_text()
    # Reorder: the tag first.
    page.click("button[aria-label='Move Add tag “<b>hot</b>” up']")
    assert "Add tag “<b>hot</b>”" in page.locator("#actions tbody tr").nth(0).inner_text()

    # The event fires (through the one write path); the in-process task runs after commit.
    with transaction.atomic():
        event_record(
            account=account,
            custom_event=event,
            contact=contact,
            source="api",
            metadata={
                "planTier": "enterprise",
                "note": "<script>window.__xss = 1</script><img src=x onerror=alert(1)>",
            },
        )

    page.click("nav >> text=Run log")
    statuses = page.locator("#runs tbody tr .badge").all_inner_texts()
    assert statuses == ["Succeeded", "Succeeded"]

    page.click("#runs tbody tr >> nth=0 >> text=jane@example.com")
    assert page.locator("h1").inner_text() == "jane@example.com"
    assert page.locator("#contact-score").inner_text() == "10"
    assert page.locator("#contact-tags").inner_text().strip() == "<b>hot</b>"
    assert "<script>window.__xss = 1</script>" in page.locator("code.metadata").inner_text()
    assert page.evaluate("window.__xss") is None
    assert dialogs == []

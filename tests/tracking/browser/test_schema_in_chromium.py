"""A metadata schema edited on the event's settings page, broken by the beacon on a customer's page (another
origin), and the violations listed on the event's page, in Chromium."""

import pytest

from custom_events.models import CustomEvent
from paminga.services import account_update
from tests.factories import CustomEventFactory
from tracking.models import EventRecord

from .conftest import DB_LOCK, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, server):
    page.goto(f"{server.url}/login/")
    page.fill("#id_username", "owner@acme.test")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/settings/account/custom-events/")


def test_a_violation_shows_on_the_events_page(page, app_server, site_server, user, account):
    account_update(account=account, domains=["127.0.0.1"])
    event = CustomEventFactory(account=account, name="Requested demo", slug="requested-demo")
    log_in(page, app_server)

    # given: a schema declared on the event's page
    page.goto(f"{app_server.url}/settings/account/custom-events/{event.pk}/edit/")
    page.select_option("#id_metadata_schema_mode", "warn")
    page.fill("#id_schema-0-name", "planTier")
    page.check("#id_schema-0-required")
    page.fill("#id_schema-0-allowed_values", "basic, pro, enterprise")
    page.fill("#id_schema-1-name", "seats")
    page.select_option("#id_schema-1-type", "number")
    page.click("button:has-text('Save changes')")
    page.wait_for_selector("text=Custom event “Requested demo” saved")
    with DB_LOCK:
        assert [p["name"] for p in CustomEvent.objects.get(pk=event.pk).metadata_schema] == ["planTier", "seats"]

    # when: the customer's site fires the event with metadata that breaks it
    site_server.pages["/pricing.html"] = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Pricing</title>"
        f'<script async src="{app_server.url}/beacon/{account.site_key}.js"></script></head>'
        "<body><h1>Pricing</h1></body></html>"
    )
    page.goto(site_server.url + "/pricing.html")
    page.wait_for_function("() => window.$__MA && window.$__MA.loaded")
    page.evaluate("() => $__MA.captureEvent('requested-demo', {metadata: {planTier: 'gold', seats: '3'}})")
    wait_until(lambda: EventRecord.objects.exists(), what="the event")
    with DB_LOCK:
        assert EventRecord.objects.get().metadata == {"planTier": "gold", "seats": "3"}  # warn keeps it

    # then: the event's page lists the violations
    page.goto(f"{app_server.url}/settings/account/custom-events/{event.pk}/edit/")
    listed = page.locator("#schema-violations tbody tr").all_inner_texts()
    assert len(listed) == 1
    assert "planTier is “gold”, not one of basic, pro, enterprise." in listed[0]
    assert "seats must be a number, not “3”." in listed[0]

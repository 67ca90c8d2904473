import pytest

from custom_events.models import CustomEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "owner@acme.test")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/settings/account/custom-events/")


def test_slug_is_suggested_from_the_name_and_the_event_is_created(page, live_server, user, account):
    log_in(page, live_server)
    page.click("text=New custom event")
    # The suggestion script is deferred: type only once it has run.
    page.wait_for_url("**/custom-events/new/", wait_until="load")

    page.fill("#id_name", "Watched Product Vidéo!")
    assert page.input_value("#id_slug") == "watched-product-video"

    page.check("#id_counts_as_conversion")
    page.click("button:has-text('Create event')")

    page.wait_for_selector("text=Custom event “Watched Product Vidéo!” created")
    event = CustomEvent.objects.get(account=account)
    assert (event.slug, event.counts_as_conversion) == ("watched-product-video", True)


def test_a_slug_typed_by_hand_is_kept_and_server_errors_show_next_to_the_field(page, live_server, user, account):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/settings/account/custom-events/new/")

    page.fill("#id_slug", "impression")
    page.fill("#id_name", "Page impression")
    assert page.input_value("#id_slug") == "impression"
    page.click("button:has-text('Create event')")

    error = page.locator(".field.has-error .error")
    assert "reserved by Paminga" in error.inner_text()
    assert CustomEvent.objects.count() == 0

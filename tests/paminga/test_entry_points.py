"""Addresses a person (or a browser) tries first answer with a page, not a 404."""

import pytest

pytestmark = pytest.mark.django_db


def test_automations_lands_on_the_custom_events_overview(client_logged_in):
    response = client_logged_in.get("/automations/?start=2026-03-01&end=2026-03-08")

    assert response.status_code == 302
    assert response["Location"] == "/automations/custom-events/?start=2026-03-01&end=2026-03-08"
    assert client_logged_in.get(response["Location"]).status_code == 200
    assert client_logged_in.get("/automations/", follow=True).redirect_chain == [("/automations/custom-events/", 302)]


def test_favicon_is_served_without_logging_in(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg ") and b"</svg>" in response.content
    assert "max-age=86400" in response["Cache-Control"]


def test_app_pages_link_the_icon(client_logged_in):
    body = client_logged_in.get("/automations/custom-events/").content.decode()

    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in body
    assert client_logged_in.get("/static/favicon.svg").status_code == 200

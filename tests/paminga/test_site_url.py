"""The served host and port are the truth for links that leave the page, unless SITE_URL is set."""

import io

import pytest
from django.core.management import call_command
from django.test import RequestFactory

from paminga.site import DEVELOPMENT_URL, site_url

pytestmark = pytest.mark.django_db


def snippet_src(body: str) -> str:
    start = body.index("&lt;script async src=&quot;") + len("&lt;script async src=&quot;")
    return body[start : body.index("&quot;", start)]


def test_the_snippet_names_the_host_and_port_the_page_was_served_on(client_logged_in, account, settings):
    settings.SITE_URL = ""

    body = client_logged_in.get("/settings/account/", HTTP_HOST="127.0.0.1:8101").content.decode()

    assert snippet_src(body) == f"http://127.0.0.1:8101/beacon/{account.site_key}.js"


def test_the_snippet_names_the_scheme_it_was_served_with(client_logged_in, account, settings):
    settings.SITE_URL = ""

    body = client_logged_in.get("/settings/account/", HTTP_HOST="localhost:9000", secure=True).content.decode()

    assert snippet_src(body) == f"https://localhost:9000/beacon/{account.site_key}.js"


def test_an_explicit_site_url_wins_over_the_request_host(client_logged_in, account, settings):
    settings.SITE_URL = "https://paminga.example.org"

    body = client_logged_in.get("/settings/account/", HTTP_HOST="127.0.0.1:8101").content.decode()

    assert snippet_src(body) == f"https://paminga.example.org/beacon/{account.site_key}.js"
    assert "8101" not in body


def test_site_url_outside_a_request(settings):
    settings.SITE_URL = ""
    assert site_url() == DEVELOPMENT_URL == "http://127.0.0.1:8000"
    assert site_url(request=RequestFactory().get("/", HTTP_HOST="localhost:8101")) == "http://localhost:8101"
    settings.SITE_URL = "https://paminga.example.org/"
    assert site_url() == "https://paminga.example.org"


def test_seed_demo_prints_the_url_make_run_serves(settings):
    settings.SITE_URL = ""
    out = io.StringIO()

    call_command("seed_demo", "--no-history", "--url", "http://127.0.0.1:8101", stdout=out)

    text = out.getvalue()
    assert "Log in at http://127.0.0.1:8101/login/ as demo@paminga.local" in text
    assert "Demo website with the tracking beacon: http://127.0.0.1:8101/demo/" in text
    assert ":8000" not in text


def test_seed_demo_without_a_url_prints_site_url(settings):
    settings.SITE_URL = "https://paminga.example.org"
    out = io.StringIO()

    call_command("seed_demo", "--no-history", stdout=out)

    assert "Log in at https://paminga.example.org/login/" in out.getvalue()

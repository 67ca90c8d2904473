"""The first-party aliases (/p/<site key>.js, /p/<site key>/e) and the first-party install snippet."""

import json
import re

import pytest
from django.utils.html import escapejs

from tracking.models import Impression
from tracking.templatetags.tracking import beacon_snippet

pytestmark = pytest.mark.django_db

BLOCKED = re.compile(r"track|analytics|collect|beacon|pixel", re.IGNORECASE)


def test_the_first_party_script_names_no_blocked_word_and_posts_next_to_itself(client, account):
    response = client.get(f"/p/{account.site_key}.js")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    body = response.content.decode()
    assert BLOCKED.findall(body) == []
    assert not body.startswith("/*")  # the header comment is the standard script's only
    # relative to the script's own address: /pm/p/<key>.js posts to /pm/p/<key>/e
    assert f'new URL("{escapejs(account.site_key + "/e")}", me.src)' in body
    assert "testserver" not in body  # no host of ours in its text


def test_the_standard_script_keeps_its_header_and_posts_to_collect_relative_to_itself(client, account):
    body = client.get(f"/beacon/{account.site_key}.js").content.decode()

    assert body.startswith("/* Paminga tracking beacon")
    assert f'new URL("{escapejs("../collect/" + account.site_key)}", me.src)' in body


def test_an_unknown_site_key_is_404_on_the_alias_too(client):
    assert client.get("/p/nosuchkey.js").status_code == 404


def test_the_alias_endpoint_records_and_answers_cors_for_the_accounts_origins(client, account):
    hit = {"type": "impression", "id": "imp-0000001", "visitor": "visitor-0001", "url": "https://acme.test/"}

    response = client.post(
        f"/p/{account.site_key}/e", json.dumps(hit), content_type="text/plain", HTTP_ORIGIN="https://acme.test"
    )

    assert response.status_code == 200 and response.json()["status"] == "recorded"
    assert response["Access-Control-Allow-Origin"] == "https://acme.test"
    assert Impression.objects.count() == 1


def test_the_first_party_snippet_loads_the_script_from_the_sites_own_path(account):
    snippet = beacon_snippet(account, first_party_url="https://www.acme.test/pm/")

    assert f'<script async src="https://www.acme.test/pm/p/{account.site_key}.js"></script>' in snippet
    assert BLOCKED.findall(snippet.split("-->", 1)[1]) == []


def test_the_settings_page_shows_the_first_party_snippet_for_a_valid_address(client_logged_in, account):
    page = client_logged_in.get("/settings/account/?first_party=https://www.acme.test/pm").content.decode()
    assert f"https://www.acme.test/pm/p/{account.site_key}.js" in page
    assert 'id="first-party-snippet"' in page

    page = client_logged_in.get("/settings/account/?first_party=https://www.acme.test/pm?x=1").content.decode()
    assert 'id="first-party-snippet"' not in page and "without a query or fragment" in page

    page = client_logged_in.get("/settings/account/").content.decode()
    assert 'id="first-party-snippet"' not in page and 'name="first_party"' in page

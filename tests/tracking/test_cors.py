import pytest

from tracking.cors import host_matches, origin_allowed

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("acme.test", None, True),
        ("ACME.test", 443, True),
        ("www.acme.test", None, False),
        ("blog.shop.test", None, True),
        ("a.b.shop.test", 8080, True),
        ("shop.test", None, False),  # *.shop.test is subdomains only
        ("evilshop.test", None, False),
        ("localhost", 8000, True),
        ("localhost", 3000, False),
        ("", None, False),
    ],
)
def test_host_matching(host, port, allowed):
    domains = ["acme.test", "*.shop.test", "localhost:8000"]

    assert host_matches(host=host, port=port, domains=domains) is allowed


def test_origin_allowed_uses_the_accounts_domains_and_allows_all_when_none_are_set(account):
    assert origin_allowed(account=account, origin="https://acme.test")
    assert not origin_allowed(account=account, origin="https://globex.test")
    assert not origin_allowed(account=account, origin="null")

    account.domains = []
    assert origin_allowed(account=account, origin="https://anything.test")


def test_cors_headers_only_for_the_accounts_origins(client, account, other_account):
    url = f"/collect/{account.site_key}"
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}

    own = client.options(url, headers={"Origin": "https://acme.test", **preflight})
    foreign = client.options(url, headers={"Origin": "https://globex.test", **preflight})
    other_site = client.options(f"/collect/{other_account.site_key}", headers={"Origin": "https://acme.test"})

    assert own.status_code == 200 and own.headers["Access-Control-Allow-Origin"] == "https://acme.test"
    assert "Access-Control-Allow-Origin" not in foreign.headers
    assert "Access-Control-Allow-Origin" not in other_site.headers


def test_cors_answer_on_a_simple_post(client, account):
    response = client.post(
        f"/collect/{account.site_key}", data="{}", content_type="text/plain", headers={"Origin": "https://acme.test"}
    )

    # Refused (malformed), but the browser may read why.
    assert response.status_code == 400 and response.headers["Access-Control-Allow-Origin"] == "https://acme.test"


def test_no_cors_outside_the_collect_endpoint(client, account):
    response = client.get(f"/beacon/{account.site_key}.js", headers={"Origin": "https://acme.test"})

    assert "Access-Control-Allow-Origin" not in response.headers

"""Safe defaults: no start without a SECRET_KEY in production, one switch for TLS (HSTS, Secure cookies), and a
Content-Security-Policy on every page. Settings are read once at start-up, so those are checked in a fresh
interpreter with the environment under test."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
response = Client().get("/login/", HTTP_X_FORWARDED_PROTO="https")
cookie = response.cookies.get("csrftoken")
print(json.dumps({
    "status": response.status_code,
    "hsts": response.headers.get("Strict-Transport-Security"),
    "csp": response.headers.get("Content-Security-Policy"),
    "csrf_cookie_secure": bool(cookie and cookie["secure"]),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
}))
"""


def _run(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "BEHIND_TLS_PROXY")}
    clean.update(
        DJANGO_SETTINGS_MODULE="paminga.settings",
        DATABASE_URL="sqlite:///:memory:",
        STATIC_MANIFEST="0",
        CELERY_BROKER_URL="",
        REDIS_URL="",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


def test_no_secret_key_with_debug_off_refuses_to_start():
    # when
    result = _run("import django; django.setup()", DEBUG="0")

    # then
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stderr


def test_manage_py_check_fails_without_a_secret_key():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")},
            "DEBUG": "0",
            "DJANGO_SETTINGS_MODULE": "paminga.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_on_starts_with_a_development_key():
    result = _run(
        "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)", DEBUG="1"
    )
    assert result.returncode == 0, result.stderr
    assert "insecure-development-key" in result.stdout


@pytest.mark.parametrize("tls", ["0", "1"])
def test_behind_tls_proxy_turns_on_hsts_and_secure_cookies(tls):
    # when
    result = _run(PROBE, DEBUG="0", SECRET_KEY="probe-key", BEHIND_TLS_PROXY=tls)

    # then
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 200
    assert answer["csp"]
    if tls == "1":
        assert answer["hsts"] == "max-age=31536000"
        assert answer["csrf_cookie_secure"] is True
        assert answer["session_cookie_secure"] is True
    else:
        assert answer["hsts"] is None
        assert answer["csrf_cookie_secure"] is False
        assert answer["session_cookie_secure"] is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    ["/login/", "/settings/account/", "/settings/account/api-keys/", "/graphql/", "/automations/"],
)
def test_every_page_carries_a_content_security_policy(client_logged_in, url):
    response = client_logged_in.get(url, HTTP_ACCEPT="text/html")
    policy = response.headers.get("Content-Security-Policy", "")
    assert response.status_code in (200, 302, 404), url
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy


@pytest.mark.django_db
def test_inline_scripts_carry_the_nonce(client):
    # given: the demo site embeds the beacon snippet (inline scripts) in a page of ours
    call_command("seed_demo", "--no-history", stdout=io.StringIO())

    # when
    response = client.get("/demo/")
    policy = response.headers["Content-Security-Policy"]
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    html = response.content.decode()
    scripts = html.count("<script")
    assert scripts >= 3
    assert html.count(f'<script nonce="{nonce}"') == scripts


def test_login_form_labels_its_field_email(client):
    html = client.get("/login/").content.decode()
    assert '<label for="id_username">Email' in html

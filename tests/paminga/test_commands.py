import hashlib
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from paminga.models import Account, ApiKey, Membership
from paminga.services import api_key_authenticate, api_key_revoke

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_create_account_prints_one_json_object():
    out = run(
        "create_account",
        "acme",
        "--name",
        "Acme Inc.",
        "--domain",
        "acme.com",
        "--domain",
        "www.acme.com",
        "--owner",
        "Owner@Acme.com",
        "--password",
        "s3cret-passw0rd",
    )

    data = json.loads(out)
    account = Account.objects.get(slug="acme")
    assert data["slug"] == "acme" and data["site_key"] == account.site_key and data["name"] == "Acme Inc."
    assert account.domains == ["acme.com", "www.acme.com"]
    user = get_user_model().objects.get(username="owner@acme.com")
    assert user.check_password("s3cret-passw0rd")
    assert Membership.objects.get(user=user, account=account).role == "owner"


def test_create_account_refuses_bad_or_duplicate_slug():
    run("create_account", "acme", "--name", "Acme")
    with pytest.raises(CommandError, match="already exists"):
        run("create_account", "acme", "--name", "Again")
    with pytest.raises(CommandError, match="slug"):
        run("create_account", "Not A Slug", "--name", "Bad")
    assert Account.objects.count() == 1


def test_create_api_key_prints_the_secret_once_and_stores_a_hash():
    run("create_account", "acme", "--name", "Acme")

    secret = run("create_api_key", "acme", "--name", "CRM sync").strip()

    key = ApiKey.objects.get()
    assert secret.startswith(f"pmg_{key.prefix}_")
    assert key.name == "CRM sync" and key.account.slug == "acme"
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps(list(ApiKey.objects.values()), default=str)
    assert api_key_authenticate(secret=secret) == key


def test_create_api_key_json_output_and_unknown_account():
    run("create_account", "acme", "--name", "Acme")
    data = json.loads(run("create_api_key", "acme", "--name", "Pipeline", "--json"))
    assert set(data) == {"account", "name", "prefix", "key"}

    with pytest.raises(CommandError, match="No account"):
        run("create_api_key", "nope", "--name", "x")


def test_wrong_or_revoked_keys_do_not_authenticate():
    run("create_account", "acme", "--name", "Acme")
    secret = run("create_api_key", "acme", "--name", "k").strip()

    assert api_key_authenticate(secret=secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert api_key_authenticate(secret="") is None
    assert api_key_authenticate(secret="garbage") is None
    api_key_revoke(api_key=ApiKey.objects.get())
    assert api_key_authenticate(secret=secret) is None


def test_seed_demo_is_idempotent():
    first = run("seed_demo")
    second = run("seed_demo")

    assert "Created the demo account" in first and "Reusing the demo account" in second
    assert "demo@paminga.local" in second and "paminga-demo" in second
    account = Account.objects.get(slug="demo")
    assert Account.objects.count() == 1
    assert account.custom_events.count() == 4
    assert get_user_model().objects.get(username="demo@paminga.local").check_password("paminga-demo")

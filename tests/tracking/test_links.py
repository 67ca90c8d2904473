import io
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import CommandError, call_command

from tests.factories import ContactFactory
from tracking.links import CONTACT_PARAM, contact_link_make, contact_token_make, contact_token_read
from tracking.models import Contact

pytestmark = pytest.mark.django_db


def test_link_keeps_the_url_and_adds_a_token_that_reads_back(account):
    contact = ContactFactory(account=account, email="ada@acme.test")

    link = contact_link_make(contact=contact, url="https://acme.test/offer?ref=mail&pm_ct=old#top")

    parts = urlsplit(link)
    query = parse_qs(parts.query)
    assert (parts.netloc, parts.path, parts.fragment, query["ref"]) == ("acme.test", "/offer", "top", ["mail"])
    assert len(query[CONTACT_PARAM]) == 1
    assert contact_token_read(account=account, token=query[CONTACT_PARAM][0]) == contact.pk


def test_token_is_bound_to_its_account_and_cannot_be_altered(account, other_account):
    contact = ContactFactory(account=account, email="ada@acme.test")
    token = contact_token_make(contact=contact)
    account_id, contact_id, rest = token.split(".", 2)

    assert contact_token_read(account=other_account, token=token) is None
    assert contact_token_read(account=account, token=f"{account_id}.{int(contact_id) + 1}.{rest}") is None
    assert contact_token_read(account=account, token=token[:-2]) is None
    assert contact_token_read(account=account, token="") is None


def test_token_expires(account, settings):
    contact = ContactFactory(account=account, email="ada@acme.test")
    token = contact_token_make(contact=contact)

    settings.TRACKING_CONTACT_LINK_MAX_AGE_DAYS = -1

    assert contact_token_read(account=account, token=token) is None


def test_no_link_for_an_anonymous_contact_or_a_relative_url(account):
    with pytest.raises(ValueError):
        contact_token_make(contact=ContactFactory(account=account, email=None))
    with pytest.raises(ValueError):
        contact_link_make(contact=ContactFactory(account=account), url="/offer")


def test_command_prints_the_link_and_creates_the_contact(account):
    out = io.StringIO()

    call_command("contact_link", account.slug, "Ada@Acme.test", "https://acme.test/offer", stdout=out)

    contact = Contact.objects.get(account=account)
    link = out.getvalue().strip()
    assert contact.email == "ada@acme.test"
    assert link.startswith("https://acme.test/offer?pm_ct=")
    assert contact_token_read(account=account, token=parse_qs(urlsplit(link).query)["pm_ct"][0]) == contact.pk


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "ada@acme.test", "https://acme.test/"], "No account"),
        (["acme", "not-an-email", "https://acme.test/"], "valid email"),
        (["acme", "ada@acme.test", "acme.test/offer"], "absolute"),
    ],
)
def test_command_errors(account, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("contact_link", *args, stdout=io.StringIO())

    assert Contact.objects.count() == 0

import pytest
from django.urls import reverse

from paminga.models import Account, Membership
from tests.factories import ContactFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_client(client, account):
    member = UserFactory(username="member@acme.test")
    MembershipFactory(user=member, account=account, role=Membership.Role.MEMBER)
    client.force_login(member)
    return client


def test_a_member_sees_but_cannot_change_account_settings(member_client, account):
    page = member_client.get(reverse("account_settings"))
    assert page.status_code == 200
    assert "Only the account's owners and admins can change these settings." in page.content.decode()

    response = member_client.post(
        reverse("account_settings"),
        {
            "name": "Hijacked",
            "domains": "evil.test",
            "time_zone": "UTC",
            "session_timeout_minutes": 30,
        },
    )

    assert response.status_code == 403
    account.refresh_from_db()
    assert (account.name, account.domains) == ("Acme", ["acme.test"])


def test_a_member_neither_sees_nor_rotates_the_webhook_secret(member_client, account):
    secret = account.webhook_secret

    assert secret not in member_client.get(reverse("account_settings")).content.decode()
    member_client.post(reverse("automations:webhook_secret_rotate"))

    assert Account.objects.get(pk=account.pk).webhook_secret == secret


def test_an_owner_sees_and_rotates_the_webhook_secret(client_logged_in, account):
    secret = account.webhook_secret

    assert secret in client_logged_in.get(reverse("account_settings")).content.decode()
    client_logged_in.post(reverse("automations:webhook_secret_rotate"))

    assert Account.objects.get(pk=account.pk).webhook_secret != secret


@pytest.mark.parametrize("before", ["2024-01-01T00:00:00", "2024-01-01T00:00:00+05:00"])
def test_contact_timeline_accepts_naive_and_aware_positions(client_logged_in, account, before):
    contact = ContactFactory(account=account)

    response = client_logged_in.get(reverse("contacts:detail", args=[contact.pk]), {"before": before})

    assert response.status_code == 200


@pytest.mark.parametrize("before", ["0001-01-01T00:00:00+05:00", "not-a-date"])
def test_contact_timeline_refuses_impossible_positions_with_404(client_logged_in, account, before):
    contact = ContactFactory(account=account)

    response = client_logged_in.get(reverse("contacts:detail", args=[contact.pk]), {"before": before})

    assert response.status_code == 404

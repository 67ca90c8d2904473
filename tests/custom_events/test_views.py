import pytest
from django.test import Client
from django.urls import reverse

from custom_events.models import CustomEvent
from tests.factories import CustomEventFactory, EventRecordFactory
from tracking.models import EventRecord

pytestmark = pytest.mark.django_db

LIST = reverse("custom_events:list")
CREATE = reverse("custom_events:create")


def test_list_shows_the_accounts_events_only(client_logged_in, account, other_account):
    CustomEventFactory(
        account=account,
        name="Watched Product Video",
        slug="watched-product-video",
        counts_as_conversion=True,
        description="Overview video",
    )
    CustomEventFactory(account=other_account, name="Secret Globex Event", slug="globex-secret")

    response = client_logged_in.get(LIST)

    assert response.status_code == 200
    body = response.content.decode()
    assert "Watched Product Video" in body and "watched-product-video" in body and "Overview video" in body
    assert "Counts as conversion" in body
    assert "Secret Globex Event" not in body


def test_create_event(client_logged_in, account):
    response = client_logged_in.post(
        CREATE,
        {
            "name": "Requested Demo",
            "slug": "requested-demo",
            "description": "Demo form",
            "counts_as_conversion": "on",
        },
    )

    assert response.status_code == 302 and response["Location"] == LIST
    event = CustomEvent.objects.get(account=account)
    assert (event.name, event.slug, event.description, event.counts_as_conversion) == (
        "Requested Demo",
        "requested-demo",
        "Demo form",
        True,
    )
    assert "created" in client_logged_in.get(LIST).content.decode()


def test_create_with_errors_shows_them_next_to_the_field(client_logged_in, account):
    CustomEventFactory(account=account, slug="taken")

    response = client_logged_in.post(CREATE, {"name": "", "slug": "Has Space_"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "This field is required." in body
    assert "Slugs cannot contain spaces" in body

    response = client_logged_in.post(CREATE, {"name": "Dup", "slug": "taken"})
    assert "This slug is already used by another custom event in this account." in response.content.decode()
    assert CustomEvent.objects.filter(account=account).count() == 1


def test_create_form_escapes_user_input(client_logged_in):
    response = client_logged_in.post(CREATE, {"name": "<script>alert(1)</script>", "slug": "<b>x</b>"})

    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_edit_event(client_logged_in, account):
    event = CustomEventFactory(account=account, name="Old", slug="old")

    url = reverse("custom_events:update", args=[event.pk])
    assert client_logged_in.get(url).status_code == 200
    response = client_logged_in.post(
        url, {"name": "New", "slug": "new", "description": "", "counts_as_conversion": "on"}
    )

    assert response.status_code == 302
    event.refresh_from_db()
    assert (event.name, event.slug, event.counts_as_conversion) == ("New", "new", True)


def test_delete_confirmation_says_what_will_be_removed_then_deletes(
    client_logged_in, account, django_capture_on_commit_callbacks
):
    event = CustomEventFactory(account=account, name="Doomed", slug="doomed")
    EventRecordFactory.create_batch(3, custom_event=event)
    url = reverse("custom_events:delete", args=[event.pk])

    page = client_logged_in.get(url).content.decode()
    assert "Doomed" in page and "<strong>3</strong> recorded occurrences" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client_logged_in.post(url)
    assert response.status_code == 302
    assert not CustomEvent.objects.filter(pk=event.pk).exists()
    assert not EventRecord.objects.filter(custom_event_id=event.pk).exists()


def test_other_accounts_event_is_404_for_every_view(client_logged_in, other_account):
    foreign = CustomEventFactory(account=other_account, name="Foreign", slug="foreign")

    for name in ("custom_events:update", "custom_events:delete"):
        url = reverse(name, args=[foreign.pk])
        assert client_logged_in.get(url).status_code == 404
        assert client_logged_in.post(url, {"name": "Hacked", "slug": "hacked"}).status_code == 404

    foreign.refresh_from_db()
    assert (foreign.name, foreign.slug) == ("Foreign", "foreign")


def test_login_required(client, account):
    event = CustomEventFactory(account=account)
    for url in (
        LIST,
        CREATE,
        reverse("custom_events:update", args=[event.pk]),
        reverse("custom_events:delete", args=[event.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert client.post(CREATE, {"name": "x", "slug": "x"}).status_code == 302
    assert CustomEvent.objects.count() == 1


def test_csrf_enforced(user, account):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    event = CustomEventFactory(account=account)

    assert client.post(CREATE, {"name": "x", "slug": "x"}).status_code == 403
    assert client.post(reverse("custom_events:delete", args=[event.pk])).status_code == 403
    assert CustomEvent.objects.count() == 1

    # with the token the same request succeeds
    client.get(CREATE)
    token = client.cookies["csrftoken"].value
    assert client.post(CREATE, {"name": "x", "slug": "x", "csrfmiddlewaretoken": token}).status_code == 302
    assert CustomEvent.objects.count() == 2


def test_user_without_account_is_told_so(client, db):
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    response = client.get(LIST)
    assert response.status_code == 403
    assert "not a member of any Paminga account" in response.content.decode()


def test_switching_accounts_changes_what_the_pages_show(client_logged_in, user, other_account):
    from tests.factories import MembershipFactory

    MembershipFactory(user=user, account=other_account)
    CustomEventFactory(account=other_account, name="Globex Event", slug="globex-event")
    assert "Globex Event" not in client_logged_in.get(LIST).content.decode()

    client_logged_in.post(reverse("account_switch"), {"account": other_account.pk, "next": LIST})

    assert "Globex Event" in client_logged_in.get(LIST).content.decode()


def test_cannot_switch_to_an_account_without_membership(client_logged_in, other_account):
    CustomEventFactory(account=other_account, name="Globex Event", slug="globex-event")

    client_logged_in.post(reverse("account_switch"), {"account": other_account.pk})

    assert "Globex Event" not in client_logged_in.get(LIST).content.decode()

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from custom_events.models import MarketingChannel, MarketingSource
from tests.factories import EventRecordFactory, MarketingSourceFactory

pytestmark = pytest.mark.django_db

LIST = reverse("marketing_sources:list")
CREATE = reverse("marketing_sources:create")


def test_list_shows_the_accounts_sources_only(client_logged_in, account, other_account):
    MarketingSourceFactory(account=account, name="Partner Newsletter", channel=MarketingChannel.EMAIL_MARKETING)
    MarketingSourceFactory(account=other_account, name="Globex Secret Source")

    body = client_logged_in.get(LIST).content.decode()

    assert "Partner Newsletter" in body and "Email marketing" in body
    assert "Globex Secret Source" not in body
    assert f'<a href="{LIST}" aria-current="page">Marketing Sources</a>' in body


def test_create(client_logged_in, account):
    response = client_logged_in.post(CREATE, {"name": "  Trade Show 2026 ", "channel": "PHYSICAL_EVENT"})

    assert response.status_code == 302 and response["Location"] == LIST
    source = MarketingSource.objects.get()
    assert (source.account, source.name, source.channel) == (account, "Trade Show 2026", "PHYSICAL_EVENT")


def test_names_are_unique_ignoring_case(client_logged_in, account, other_account):
    MarketingSourceFactory(account=account, name="Partner Newsletter")
    MarketingSourceFactory(account=other_account, name="Podcast")

    duplicate = client_logged_in.post(CREATE, {"name": "PARTNER newsletter", "channel": "REFERRAL"})
    other_accounts_name = client_logged_in.post(CREATE, {"name": "Podcast", "channel": "REFERRAL"})

    assert duplicate.status_code == 200
    assert "A marketing source with this name already exists." in duplicate.content.decode()
    assert other_accounts_name.status_code == 302
    assert MarketingSource.objects.filter(account=account).count() == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "channel": "REFERRAL"}, "This field is required."),
        ({"name": "x" * 201, "channel": "REFERRAL"}, "Ensure this value has at most 200 characters"),
        ({"name": "Ok", "channel": "TELEVISION"}, "Select a valid choice."),
        ({"name": "nul\x00", "channel": "REFERRAL"}, "Null characters are not allowed."),
    ],
)
def test_invalid_input_is_shown_next_to_the_field(client_logged_in, data, message):
    response = client_logged_in.post(CREATE, data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert MarketingSource.objects.count() == 0


def test_edit(client_logged_in, account):
    source = MarketingSourceFactory(account=account, name="Old", channel=MarketingChannel.REFERRAL)
    url = reverse("marketing_sources:update", args=[source.pk])

    assert 'value="Old"' in client_logged_in.get(url).content.decode()
    response = client_logged_in.post(url, {"name": "New", "channel": "AFFILIATE"})

    assert response.status_code == 302
    source.refresh_from_db()
    assert (source.name, source.channel) == ("New", "AFFILIATE")


def test_delete_asks_for_confirmation_and_keeps_recorded_events(
    client_logged_in, account, django_capture_on_commit_callbacks
):
    source = MarketingSourceFactory(account=account, name="Partner")
    record = EventRecordFactory(
        custom_event__account=account,
        marketing_source=source,
        marketing_source_name="partner",
        marketing_channel="REFERRAL",
    )
    url = reverse("marketing_sources:delete", args=[source.pk])

    assert "keep the source name as sent" in client_logged_in.get(url).content.decode()
    assert MarketingSource.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        response = client_logged_in.post(url)

    assert response.status_code == 302
    assert MarketingSource.objects.count() == 0
    record.refresh_from_db()
    assert (record.marketing_source, record.marketing_source_name, record.marketing_channel) == (
        None,
        "partner",
        "REFERRAL",
    )


@pytest.mark.parametrize("name", ["update", "delete"])
def test_another_accounts_source_is_404(client_logged_in, other_account, name):
    source = MarketingSourceFactory(account=other_account, name="Theirs")

    response = client_logged_in.post(reverse(f"marketing_sources:{name}", args=[source.pk]), {"name": "Mine"})

    assert response.status_code == 404
    source.refresh_from_db()
    assert source.name == "Theirs"


def test_unmatched_source_names_are_listed_with_a_link_to_add_them(client_logged_in, account, other_account):
    now = timezone.now()
    EventRecordFactory.create_batch(3, custom_event__account=account, marketing_source_name="Podcast & Co")
    EventRecordFactory(custom_event__account=account, marketing_source_name="Webinar")
    EventRecordFactory(
        custom_event__account=account, marketing_source_name="Ancient", occurred_at=now - timedelta(days=31)
    )
    matched = MarketingSourceFactory(account=account, name="Partner")
    EventRecordFactory(custom_event__account=account, marketing_source=matched, marketing_source_name="partner")
    EventRecordFactory(custom_event__account=other_account, marketing_source_name="Globex Only")

    body = client_logged_in.get(LIST).content.decode()

    assert "<code>Podcast &amp; Co</code>" in body and "<code>Webinar</code>" in body
    assert body.index("Podcast &amp; Co") < body.index("Webinar")  # most frequent first
    assert f'href="{CREATE}?name=Podcast%20%26%20Co"' in body
    assert "Ancient" not in body and "Globex Only" not in body and "<code>partner</code>" not in body
    form = client_logged_in.get(CREATE, {"name": "Podcast & Co"}).content.decode()
    assert 'value="Podcast &amp; Co"' in form


def test_empty_states_say_what_is_true(client_logged_in, account, other_account):
    # given no sources and no event naming one (another account's names do not count)
    EventRecordFactory(custom_event__account=other_account, marketing_source_name="Globex Only")

    body = client_logged_in.get(LIST).content.decode()

    assert "No marketing sources yet" in body
    assert "no event in the last 30 days named a <code>marketing_source</code>" in body
    assert "matched a marketing source" not in body

    # given two events whose names both matched a source
    source = MarketingSourceFactory(account=account, name="Partner")
    for _ in range(2):
        EventRecordFactory(custom_event__account=account, marketing_source=source, marketing_source_name="partner")

    body = client_logged_in.get(LIST).content.decode()

    assert "the 2 events that named a source all matched a marketing source" in body
    assert "No marketing sources yet" not in body

from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from custom_events.models import CustomEvent
from custom_events.services import custom_event_create, custom_event_update
from tests.factories import AccountFactory, CustomEventFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "slug", ["watched-product-video", "visited-pricing-page", "downloaded-whitepaper-q1", "a", "x" * 100]
)
def test_valid_slugs_are_accepted(account, slug):
    event = custom_event_create(account=account, name="Event", slug=slug)

    assert CustomEvent.objects.get(pk=event.pk).slug == slug


@pytest.mark.parametrize(
    ("slug", "code", "message"),
    [
        ("watched product video", "slug_space", "Slugs cannot contain spaces"),
        ("watched_product_video", "slug_underscore", "Slugs cannot contain underscores"),
        ("Watched-Product-Video", "slug_uppercase", "Slugs must be lowercase."),
        ("", "blank", "Enter a slug."),
        ("watched.video!", "slug_invalid_characters", "only lowercase letters, numbers and hyphens"),
        ("x" * 101, "slug_too_long", "at most 100 characters"),
        ("impression", "slug_reserved", "reserved by Paminga"),
        ("form-submission", "slug_reserved", "reserved by Paminga"),
    ],
)
def test_invalid_slugs_are_refused_with_their_own_message(account, slug, code, message):
    with pytest.raises(ValidationError) as excinfo:
        custom_event_create(account=account, name="Event", slug=slug)

    errors = excinfo.value.error_dict["slug"]
    assert [e.code for e in errors][:1] == [code]
    assert message in " ".join(m for e in errors for m in e.messages)
    assert CustomEvent.objects.count() == 0


def test_duplicate_slug_in_the_same_account_is_refused(account):
    custom_event_create(account=account, name="First", slug="requested-demo")

    with pytest.raises(ValidationError) as excinfo:
        custom_event_create(account=account, name="Second", slug="requested-demo")

    assert excinfo.value.message_dict["slug"] == ["This slug is already used by another custom event in this account."]
    assert CustomEvent.objects.filter(account=account).count() == 1


def test_same_slug_in_two_accounts_is_allowed(account, other_account):
    custom_event_create(account=account, name="Demo", slug="requested-demo")
    custom_event_create(account=other_account, name="Demo", slug="requested-demo")

    assert CustomEvent.objects.filter(slug="requested-demo").count() == 2


def test_racing_duplicate_is_stopped_by_the_database_constraint(account):
    # given: a concurrent request inserted the slug after this one's validation passed
    custom_event_create(account=account, name="First", slug="requested-demo")

    # when: validation does not see it (as in a race), only the database can refuse it
    with (
        mock.patch("custom_events.services.custom_event_slug_taken", side_effect=[False, True]),
        pytest.raises(ValidationError) as excinfo,
    ):
        custom_event_create(account=account, name="Second", slug="requested-demo")

    # then: the user gets the same clear message, and there is still one row
    assert excinfo.value.message_dict["slug"] == ["This slug is already used by another custom event in this account."]
    assert CustomEvent.objects.filter(account=account).count() == 1


def test_database_rejects_bad_slugs_written_around_validation(account):
    for slug in ("Bad Slug", "impression"):
        with pytest.raises(IntegrityError), transaction.atomic():
            CustomEvent.objects.create(account=account, name="x", slug=slug)


def test_database_rejects_duplicate_slug_written_around_validation(account):
    CustomEventFactory(account=account, slug="dup")

    with pytest.raises(IntegrityError), transaction.atomic():
        CustomEvent.objects.create(account=account, name="x", slug="dup")


def test_update_keeps_own_slug_and_refuses_anothers(account):
    first = custom_event_create(account=account, name="First", slug="first")
    custom_event_create(account=account, name="Second", slug="second")

    custom_event_update(custom_event=first, name="First renamed", slug="first")
    with pytest.raises(ValidationError):
        custom_event_update(custom_event=first, slug="second")

    assert CustomEvent.objects.get(pk=first.pk).slug == "first"
    assert CustomEvent.objects.get(pk=first.pk).name == "First renamed"


def test_name_is_required_and_description_optional(account):
    with pytest.raises(ValidationError) as excinfo:
        custom_event_create(account=account, name="  ", slug="no-name")
    assert "name" in excinfo.value.message_dict

    event = custom_event_create(account=account, name="Named", slug="named")
    assert event.description == "" and event.counts_as_conversion is False


def test_slugs_unique_per_account_not_globally():
    a, b = AccountFactory(), AccountFactory()
    CustomEventFactory(account=a, slug="same")
    CustomEventFactory(account=b, slug="same")

    assert CustomEvent.objects.filter(slug="same").count() == 2

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from paminga.models import Account

from .metadata_schema import SchemaMode, metadata_schema_normalize
from .models import CustomEvent, MarketingSource
from .selectors import custom_event_slug_taken

DUPLICATE_SLUG_MESSAGE = "This slug is already used by another custom event in this account."


def _save_checked(event: CustomEvent) -> CustomEvent:
    errors: dict = {}
    try:
        event.full_clean(validate_constraints=False)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    # The unique constraint spans (account, slug); reported on the slug, where the user can fix it.
    if "slug" not in errors and custom_event_slug_taken(account=event.account, slug=event.slug, exclude_pk=event.pk):
        errors["slug"] = [ValidationError(DUPLICATE_SLUG_MESSAGE, code="unique")]
    if errors:
        raise ValidationError(errors)
    try:
        # A savepoint so that losing a race to a concurrent insert leaves the caller's transaction usable.
        with transaction.atomic():
            event.save()
    except IntegrityError as exc:
        # Two requests can both pass full_clean(); the unique constraint decides, and the loser gets the
        # same message the form would have shown.
        if custom_event_slug_taken(account=event.account, slug=event.slug, exclude_pk=event.pk):
            raise ValidationError({"slug": ValidationError(DUPLICATE_SLUG_MESSAGE, code="unique")}) from exc
        raise
    _definitions_changed(event.account)
    return event


def _definitions_changed(account: Account) -> None:
    from .cache import custom_events_cache_clear  # the hot paths cache definitions per account

    custom_events_cache_clear(account=account)


def _schema_normalized(value):
    """The schema in its stored form; as given when it is invalid, so that full_clean() reports it on its field with
    the others."""
    try:
        return metadata_schema_normalize(value)
    except ValidationError:
        return value


def custom_event_create(
    *,
    account: Account,
    name: str,
    slug: str,
    description: str = "",
    counts_as_conversion: bool = False,
    metadata_schema: list | None = None,
    metadata_schema_mode: str = SchemaMode.OFF,
) -> CustomEvent:
    event = CustomEvent(
        account=account,
        name=(name or "").strip(),
        slug=(slug or "").strip(),
        description=(description or "").strip(),
        counts_as_conversion=bool(counts_as_conversion),
        metadata_schema=_schema_normalized(metadata_schema),
        metadata_schema_mode=metadata_schema_mode or SchemaMode.OFF,
    )
    return _save_checked(event)


def custom_event_update(*, custom_event: CustomEvent, **fields) -> CustomEvent:
    """Changes the given fields. A new metadata schema or mode applies to occurrences recorded from now on: recorded
    events are never rewritten."""
    allowed = {"name", "slug", "description", "counts_as_conversion", "metadata_schema", "metadata_schema_mode"}
    for key, value in fields.items():
        if key not in allowed:
            raise TypeError(f"custom_event_update() got an unexpected field {key!r}")
        if isinstance(value, str):
            value = value.strip()
        if key == "metadata_schema":
            value = _schema_normalized(value)
        setattr(custom_event, key, value)
    return _save_checked(custom_event)


def custom_event_delete(*, custom_event: CustomEvent):
    """Hides the event at once (every page and API, and capture, which then refuses its slug as unknown) and
    schedules the removal of what it owns (occurrences, action runs, actions, report rollups) in the background:
    this answers at once however many occurrences there are. Returns the BackgroundDelete."""
    from automations.deletes import background_delete_schedule

    account = custom_event.account
    with transaction.atomic():
        CustomEvent.objects.filter(pk=custom_event.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
        job = background_delete_schedule(
            kind="custom_event", account=account, target_id=custom_event.pk, label=str(custom_event)
        )
    _definitions_changed(account)
    return job


DUPLICATE_SOURCE_MESSAGE = "A marketing source with this name already exists."


def _source_save_checked(source: MarketingSource) -> MarketingSource:
    # full_clean() checks the case-insensitive unique name; the constraint decides a race between two requests.
    source.full_clean()
    try:
        with transaction.atomic():
            source.save()
    except IntegrityError as exc:
        raise ValidationError({"name": ValidationError(DUPLICATE_SOURCE_MESSAGE, code="unique")}) from exc
    return source


def marketing_source_create(*, account: Account, name: str, channel: str) -> MarketingSource:
    source = MarketingSource(account=account, name=(name or "").strip(), channel=channel)
    return _source_save_checked(source)


def marketing_source_update(*, marketing_source: MarketingSource, name: str, channel: str) -> MarketingSource:
    marketing_source.name = (name or "").strip()
    marketing_source.channel = channel
    return _source_save_checked(marketing_source)


def marketing_source_delete(*, marketing_source: MarketingSource):
    """Hides the source at once; events already recorded from it keep the name as sent (marketing_source_name)
    and their channel, and are unlinked from it in the background before it is removed."""
    from automations.deletes import background_delete_schedule

    with transaction.atomic():
        MarketingSource.objects.filter(pk=marketing_source.pk, deleted_at__isnull=True).update(
            deleted_at=timezone.now()
        )
        return background_delete_schedule(
            kind="marketing_source",
            account=marketing_source.account,
            target_id=marketing_source.pk,
            label=marketing_source.name,
        )

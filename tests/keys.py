"""The keys recorded hits and API events are kept under (tracking.models.RecordedKey), for finding their rows."""

from tracking.ingest import PAGE_KEY_PREFIX
from tracking.models import EventRecord, Impression, RecordedKey


def recorded_by_key(model, key: str):
    """The row recorded under a key: `page:<hit id>` (a page view), `beacon:<hit id>`, `api:<idempotency key>`."""
    return model.objects.get(pk=RecordedKey.objects.get(key=key).record_id)


def impression_by_hit(hit_id: str) -> Impression:
    return recorded_by_key(Impression, PAGE_KEY_PREFIX + hit_id)


def row_key(row: Impression | EventRecord) -> str | None:
    """The key a page view or event occurrence was recorded under (None: none, or expired)."""
    keys = RecordedKey.objects.filter(account_id=row.account_id, record_id=row.pk)
    if isinstance(row, Impression):
        keys = keys.filter(key__startswith=PAGE_KEY_PREFIX)
    else:
        keys = keys.exclude(key__startswith=PAGE_KEY_PREFIX)
    return keys.values_list("key", flat=True).first()


def hit_id(impression: Impression) -> str | None:
    key = row_key(impression)
    return key and key[len(PAGE_KEY_PREFIX) :]

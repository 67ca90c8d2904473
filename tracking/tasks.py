import logging

from celery import shared_task
from django.utils import timezone

from .partitions import partitions_maintain, recorded_keys_prune

logger = logging.getLogger(__name__)


@shared_task
def partitions_maintain_task() -> dict:
    """Creates the coming months' partitions ahead and deletes the expired keys of recorded hits (beat)."""
    now = timezone.now()
    created = partitions_maintain(now=now)
    keys = recorded_keys_prune(now=now)
    logger.info("Partitions created: %s; expired keys deleted: %d", created, keys)
    return {"created": created, "keys_deleted": keys}

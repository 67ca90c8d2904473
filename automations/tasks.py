import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True)
def action_run_task(self, run_id: int) -> None:
    from .models import ActionRun

    if not ActionRun.objects.filter(pk=run_id).exists():
        logger.info("Action run %s no longer exists", run_id)
        return
    from .services import action_run_execute

    action_run_execute(run_id=run_id, task=self)

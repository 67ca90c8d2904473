from celery import shared_task

from .services import report_rollups_update


@shared_task(ignore_result=True, soft_time_limit=1800, time_limit=1900)
def report_rollups_update_task() -> None:
    """Periodic (Celery beat): brings the report rollups up to date. Runs queue on a database lock, so an
    overlapping run waits instead of doing the work twice."""
    report_rollups_update()

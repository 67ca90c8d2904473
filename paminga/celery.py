import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")

app = Celery("paminga")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(sender=None, **kwargs) -> None:
    """What Django does around each request, around each task: drop a connection that is too old (CONN_MAX_AGE) or
    broken, so a database restart costs one failed attempt, not every task until the worker restarts."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # in-process: the caller's connection (and transaction) must stay as it is
    from django.db import close_old_connections

    close_old_connections()

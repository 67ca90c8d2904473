import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")

app = Celery("paminga")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

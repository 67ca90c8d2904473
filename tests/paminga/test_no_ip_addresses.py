"""No raw IP address is stored: no model field holds one, and the access log leaves it out."""

import runpy
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import models


def test_no_model_has_an_ip_address_field():
    # django-axes (login lockout) ships models with addresses, but with its cache handler it never writes them: the
    # failed attempts it counts live in the cache and expire with the lockout.
    assert settings.AXES_HANDLER == "axes.handlers.cache.AxesCacheHandler"
    fields = [
        f"{m._meta.label}.{f.name}"
        for m in apps.get_models()
        if m._meta.app_label != "axes"
        for f in m._meta.get_fields()
        if isinstance(f, models.GenericIPAddressField) or "ip" in f.name.split("_")
    ]
    assert fields == []


def test_the_gunicorn_access_log_has_no_client_address_referrer_or_user_agent():
    config = runpy.run_path(str(Path(settings.BASE_DIR) / "gunicorn.conf.py"))

    assert "%(h)s" not in config["access_log_format"]
    assert "%(f)s" not in config["access_log_format"] and "%(a)s" not in config["access_log_format"]

from django.apps import AppConfig


class PamingaConfig(AppConfig):
    name = "paminga"
    verbose_name = "Accounts"

from django.apps import AppConfig


class CustomEventsConfig(AppConfig):
    name = "custom_events"
    verbose_name = "Custom events"

from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    name = "automations"
    verbose_name = "Automations"

    def ready(self):
        # tracking records events and contacts and calls these in the same transaction (tracking/hooks.py): the
        # events' action runs, the runs that waited for identification, the report days a merged contact counted in.
        from tracking import hooks

        from .reports.services import report_contact_events_moving
        from .services import action_runs_create_many, action_runs_resume

        hooks.on_events_recorded(action_runs_create_many)
        hooks.on_contact_identified(action_runs_resume)
        hooks.on_contact_merging(report_contact_events_moving)

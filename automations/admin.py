from django.contrib import admin

from .models import Action, ActionRun


@admin.register(Action)
class ActionAdmin(admin.ModelAdmin):
    list_display = ["custom_event", "kind", "position", "enabled", "account"]
    list_filter = ["account", "kind", "enabled"]


@admin.register(ActionRun)
class ActionRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "action", "custom_event", "status", "attempts", "duration_ms", "created_at"]
    list_filter = ["account", "status"]
    raw_id_fields = ["action", "custom_event", "event_record"]

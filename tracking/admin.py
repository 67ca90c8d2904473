from django.contrib import admin

from .models import Contact, EventRecord, Impression, RejectedHit, Session, Visitor


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["__str__", "account", "score", "created_at", "identified_at"]
    list_filter = ["account"]
    search_fields = ["email"]


@admin.register(Visitor)
class VisitorAdmin(admin.ModelAdmin):
    list_display = ["uid", "account", "contact", "last_seen_at"]
    list_filter = ["account"]
    search_fields = ["uid"]
    raw_id_fields = ["contact"]


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ["pk", "account", "visitor", "started_at", "last_seen_at", "channel", "utm_campaign"]
    list_filter = ["account", "channel"]
    raw_id_fields = ["visitor"]
    # Texts are shared by rows and set from strings (tracking.texts): shown, never picked by id.
    readonly_fields = ["landing_url_text", "referrer_text"]


@admin.register(Impression)
class ImpressionAdmin(admin.ModelAdmin):
    list_display = ["url", "account", "occurred_at", "channel"]
    list_select_related = ["account", "url_text"]
    list_filter = ["account"]
    raw_id_fields = ["session", "visitor"]
    readonly_fields = ["url_text", "title_text", "referrer_text"]


@admin.register(EventRecord)
class EventRecordAdmin(admin.ModelAdmin):
    list_display = ["custom_event", "account", "contact", "source", "is_conversion", "occurred_at"]
    list_filter = ["account", "source", "is_conversion"]
    raw_id_fields = [
        "custom_event",
        "contact",
        "visitor",
        "session",
        "attributed_impression",
        "marketing_source",
    ]
    readonly_fields = ["page_url_text"]


@admin.register(RejectedHit)
class RejectedHitAdmin(admin.ModelAdmin):
    list_display = ["reason", "account", "slug", "message", "created_at"]
    list_filter = ["account", "reason"]

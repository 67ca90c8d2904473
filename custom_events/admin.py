from django.contrib import admin

from .models import CustomEvent, MarketingSource


@admin.register(CustomEvent)
class CustomEventAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "account", "counts_as_conversion", "updated_at"]
    list_filter = ["account", "counts_as_conversion"]
    search_fields = ["name", "slug", "description"]


@admin.register(MarketingSource)
class MarketingSourceAdmin(admin.ModelAdmin):
    list_display = ["name", "channel", "account"]
    list_filter = ["account", "channel"]
    search_fields = ["name"]

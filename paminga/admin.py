from django.contrib import admin

from .models import Account, ApiKey, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "site_key", "time_zone", "created_at"]
    search_fields = ["name", "slug", "site_key"]
    readonly_fields = ["site_key", "webhook_secret", "created_at"]
    inlines = [MembershipInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["account"]
    readonly_fields = ["prefix", "secret_hash", "created_at", "last_used_at"]
    search_fields = ["name", "prefix"]

    def has_add_permission(self, request):
        # Keys are created where the secret can be shown once: the settings page or create_api_key.
        return False

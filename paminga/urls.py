from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views
from .forms import LoginForm
from .graphql_view import PamingaGraphQLView

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    # Early in the list: URLs are resolved in order, and the API is what programs call most.
    path("graphql/", PamingaGraphQLView.as_view(), name="graphql"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=LoginForm),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/switch/", views.account_switch, name="account_switch"),
    path("settings/account/", views.account_settings, name="account_settings"),
    path("settings/account/custom-events/", include("custom_events.urls")),
    path("settings/account/api-keys/", views.api_keys, name="api_keys"),
    path("settings/account/api-keys/new/", views.api_key_create, name="api_key_create"),
    path("settings/account/api-keys/<int:pk>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("settings/account/marketing-sources/", include("custom_events.marketing_source_urls")),
    path("automations/", include("automations.urls")),
    path("contacts/", include("automations.contact_urls")),
    path("automations/", include("automations.reports.urls")),
    path("", include("tracking.urls")),
    path("admin/", admin.site.urls),
]

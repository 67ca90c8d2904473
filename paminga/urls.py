from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views
from .graphql_view import PamingaGraphQLView

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/switch/", views.account_switch, name="account_switch"),
    path("settings/account/", views.account_settings, name="account_settings"),
    path("settings/account/custom-events/", include("custom_events.urls")),
    path("graphql/", PamingaGraphQLView.as_view(), name="graphql"),
    path("", include("tracking.urls")),
    path("admin/", admin.site.urls),
]

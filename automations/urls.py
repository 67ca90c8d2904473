from django.urls import path

from . import views

app_name = "automations"

# The Automations area, per custom event. /automations/custom-events/ (the overview) and
# /automations/custom-events/<pk>/report/ belong to the reporting pages.
urlpatterns = [
    path("custom-events/<int:pk>/actions/", views.event_actions, name="event_actions"),
    path("custom-events/<int:pk>/actions/new/", views.action_create, name="action_create"),
    path("custom-events/<int:pk>/actions/<int:action_pk>/edit/", views.action_update, name="action_update"),
    path("custom-events/<int:pk>/actions/<int:action_pk>/delete/", views.action_delete, name="action_delete"),
    path("custom-events/<int:pk>/actions/<int:action_pk>/toggle/", views.action_toggle, name="action_toggle"),
    path("custom-events/<int:pk>/actions/<int:action_pk>/move/", views.action_move, name="action_move"),
    path("custom-events/<int:pk>/runs/", views.event_runs, name="event_runs"),
    path("custom-events/<int:pk>/runs/<int:run_pk>/retry/", views.action_run_retry, name="action_run_retry"),
    path("webhook-secret/rotate/", views.webhook_secret_rotate, name="webhook_secret_rotate"),
]

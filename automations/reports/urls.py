"""Reports in the Automations area, mounted at /automations/ with the namespace `reports`."""

from django.urls import path

from . import views

app_name = "reports"

urlpatterns = [
    path("custom-events/", views.overview, name="overview"),
    path("custom-events/custom-events.csv", views.overview_csv, name="overview_csv"),
    path("custom-events/<int:pk>/report/", views.event_report, name="event"),
    path("custom-events/<int:pk>/report/<slug:table>.csv", views.event_report_csv, name="event_csv"),
    path("conversions/", views.conversions, name="conversions"),
    path("conversions/<slug:table>.csv", views.conversions_csv, name="conversions_csv"),
]

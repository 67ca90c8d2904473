"""Reports in the Automations area, mounted at /automations/ with the namespace `reports`."""

from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "reports"

urlpatterns = [
    # The nav calls the area "Automations"; its overview is the custom events list (the range is kept).
    path("", RedirectView.as_view(pattern_name="reports:overview", query_string=True), name="home"),
    path("custom-events/", views.overview, name="overview"),
    path("custom-events/custom-events.csv", views.overview_csv, name="overview_csv"),
    path("custom-events/<int:pk>/report/", views.event_report, name="event"),
    path("custom-events/<int:pk>/report/<slug:table>.csv", views.event_report_csv, name="event_csv"),
    path("conversions/", views.conversions, name="conversions"),
    path("conversions/<slug:table>.csv", views.conversions_csv, name="conversions_csv"),
]

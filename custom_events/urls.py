from django.urls import path

from . import views

app_name = "custom_events"

urlpatterns = [
    path("", views.custom_event_list, name="list"),
    path("new/", views.custom_event_create, name="create"),
    path("<int:pk>/edit/", views.custom_event_update, name="update"),
    path("<int:pk>/delete/", views.custom_event_delete, name="delete"),
]

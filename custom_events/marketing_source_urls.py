from django.urls import path

from . import views

app_name = "marketing_sources"

urlpatterns = [
    path("", views.marketing_source_list, name="list"),
    path("new/", views.marketing_source_create, name="create"),
    path("<int:pk>/edit/", views.marketing_source_update, name="update"),
    path("<int:pk>/delete/", views.marketing_source_delete, name="delete"),
]

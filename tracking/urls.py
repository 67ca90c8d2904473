from django.urls import path

from . import views

app_name = "tracking"

urlpatterns = [
    path("beacon/<str:site_key>.js", views.beacon, name="beacon"),
    # Matched by CORS_URLS_REGEX: only this endpoint answers cross-origin requests.
    path("collect/<str:site_key>", views.collect, name="collect"),
    path("bench/noop", views.bench_noop, name="bench_noop"),
    path("bench/xadd/<str:site_key>", views.bench_xadd, name="bench_xadd"),
    path("demo/", views.demo, name="demo"),
    path("demo/<path:subpath>", views.demo, name="demo_page"),
    path("settings/account/event-debugger/", views.event_debugger, name="event_debugger"),
]

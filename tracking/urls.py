from django.urls import path, re_path

from . import views

app_name = "tracking"

urlpatterns = [
    path("beacon/<str:site_key>.js", views.beacon, name="beacon"),
    # Matched by CORS_URLS_REGEX: only this endpoint answers cross-origin requests.
    path("collect/<str:site_key>", views.collect, name="collect"),
    # Anything else under /collect/ (a trailing slash, a sub-path) is a sender's mistake: a JSON answer, like every
    # answer of the endpoint, not the HTML 404 page.
    re_path(r"^collect/.", views.collect_not_found),
    # First-party aliases: the same views under neutral paths, for a site that serves the script and sends its hits
    # through a path of its own domain (docs/tracking.md, "First-party path"). Nothing in them says what they are,
    # so that block lists, which match words such as "beacon" and "collect" in URLs, leave them alone.
    path("p/<str:site_key>.js", views.beacon, {"first_party": True}, name="script_first_party"),
    # Matched by CORS_URLS_REGEX too.
    path("p/<str:site_key>/e", views.collect, name="collect_first_party"),
    path("bench/noop", views.bench_noop, name="bench_noop"),
    path("bench/xadd/<str:site_key>", views.bench_xadd, name="bench_xadd"),
    path("demo/", views.demo, name="demo"),
    path("demo/<path:subpath>", views.demo, name="demo_page"),
    path("settings/account/event-debugger/", views.event_debugger, name="event_debugger"),
]

"""The application's URLs plus /bench/noop/: a view that does nothing, behind the same middleware, so the benchmark
can say what share of a request the GraphQL mutation itself costs."""

from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def noop(request):
    return HttpResponse(b'{"data":{"noop":true}}', content_type="application/json")


urlpatterns = [
    path("bench/noop/", noop),
    path("", include("paminga.urls")),
]

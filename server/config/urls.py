from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path

from config.api import api
from core.errors import error_body


def api_not_found(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body(404, f"No API endpoint at {request.path}."), status=404)


urlpatterns = [
    path("", include("ops.urls")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    re_path(r"^api/", api_not_found),
    path("", include("web.urls")),
]

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt

from config.api import api
from core.errors import error_body


# Exempt, or Django's CSRF check answered an unsafe request to a wrong API URL (a malformed
# id, say) with 403 instead of 404. It changes nothing, so there is nothing to forge.
@csrf_exempt
def api_not_found(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body(404, f"No API endpoint at {request.path}."), status=404)


urlpatterns = [
    path("", include("ops.urls")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    re_path(r"^api/", api_not_found),
    path("", include("web.urls")),
]

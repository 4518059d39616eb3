from django.urls import path
from django.views.i18n import JavaScriptCatalog, set_language

from web import views

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_page, name="login"),
    path("signup/", views.signup_page, name="signup"),
    path("rooms/", views.rooms_page, name="rooms"),
    path("rooms/<uuid:room_id>/", views.room_page, name="room"),
    path("ai/<uuid:session_id>/", views.session_page, name="session"),
    path("usage/", views.usage_page, name="usage"),
    path("search/", views.search_page, name="search"),
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["web"]), name="jsi18n"),
    path("i18n/setlang/", set_language, name="set_language"),
]

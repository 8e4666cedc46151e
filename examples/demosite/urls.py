from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", views.login_view, name="login"),
    path("polls/", include("polls.urls")),
    path("blog/", include("blog.urls")),
    path("school/", include("school.urls")),
]

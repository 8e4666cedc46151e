from django.urls import path

from . import views

app_name = "blog"
urlpatterns = [
    path("", views.post_list, name="post_list"),
    path("api/posts/", views.api_posts, name="api_posts"),
    path("api/publish/", views.api_publish, name="api_publish"),
    path("api/stats/", views.api_stats, name="api_stats"),
    path("<slug:slug>/", views.post_detail, name="post_detail"),
]

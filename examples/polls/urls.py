from django.urls import path

from . import views

app_name = "polls"
urlpatterns = [
    path("", views.index, name="index"),
    path("<int:question_id>/", views.detail, name="detail"),
    path("<int:question_id>/vote/", views.vote, name="vote"),
    path("<int:question_id>/results/", views.results, name="results"),
    path("api/questions/", views.api_questions, name="api_questions"),
    path("api/choices/<int:choice_id>/", views.api_choice, name="api_choice"),
    path("broken/<int:choice_id>/", views.broken, name="broken"),
]

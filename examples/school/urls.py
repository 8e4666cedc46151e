from django.urls import path

from . import views

app_name = "school"
urlpatterns = [
    path("gradebook/", views.gradebook, name="gradebook"),
    path("my-grades/", views.my_grades, name="my_grades"),
]

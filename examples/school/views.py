"""A school: a gradebook only teachers may open, and each student's own grades."""

from asgiref.sync import sync_to_async
from django.http import JsonResponse
from django.shortcuts import render

from dualcall.decorators import login_required, user_passes_test

from .models import Grade, InSchoolUser


async def request_user(request):
    """The request's user, loaded without blocking the event loop.

    ``request.auser()`` on Django 5.0+ (cached per request: the user the
    decorator tested); on 4.2 the lazy ``request.user`` is loaded off the loop.
    """
    if hasattr(request, "auser"):
        return await request.auser()
    await sync_to_async(getattr)(request.user, "pk")
    return request.user


async def is_teacher(user):
    """An async test function: awaits the reverse one-to-one ``user.inschooluser``."""
    if not user.is_authenticated:
        return False
    try:
        return (await user.a.inschooluser).type == InSchoolUser.TEACHER
    except InSchoolUser.DoesNotExist:
        return False


@user_passes_test(is_teacher)
async def gradebook(request):
    user = await request_user(request)
    teacher = await user.a.inschooluser  # cached by is_teacher: no query
    grades = await Grade.objects.filter(course__teacher=teacher).select_related(
        "course", "student__user"
    )
    return render(request, "school/gradebook.html", {"teacher": teacher, "grades": grades})


@login_required
async def my_grades(request):
    user = await request_user(request)
    try:
        profile = await user.a.inschooluser
    except InSchoolUser.DoesNotExist:
        return JsonResponse({"user": user.username, "grades": []})
    grades = await profile.grades.select_related("course")
    return JsonResponse(
        {
            "user": user.username,
            "type": profile.type,
            "grades": [{"course": grade.course.name, "score": grade.score} for grade in grades],
        }
    )

"""The home page and the login page (Django's session authentication)."""

from asgiref.sync import sync_to_async
from django.contrib.auth import login
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme


async def home(request):
    return render(request, "demosite/home.html")


async def login_view(request):
    """Log in with Django's ``AuthenticationForm`` and session login.

    Django 4.2 has no ``alogin``/``aauthenticate``: both run off the event
    loop with ``sync_to_async``, as any sync-only helper would.
    """
    next_url = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    if request.method == "POST":
        form = AuthenticationForm(request, data=request.POST)
        if await sync_to_async(form.is_valid)():
            await sync_to_async(login)(request, form.get_user())
            return HttpResponseRedirect(next_url)
        status = 400
    else:
        form = AuthenticationForm(request)
        status = 200
    return render(request, "demosite/login.html", {"form": form, "next": next_url}, status=status)

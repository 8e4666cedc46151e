"""Models for the pyright check (never imported: pyright reads them)."""

from django.db import models

from dualcall.typed import AsyncAttrs


class Question(models.Model):
    question_text = models.CharField(max_length=200)


class Choice(AsyncAttrs, models.Model):
    """``AsyncAttrs`` declares ``a`` for pyright."""

    question = models.ForeignKey(Question, on_delete=models.CASCADE)
    choice_text = models.CharField(max_length=200)

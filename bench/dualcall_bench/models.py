from django.db import models


class Question(models.Model):
    question_text = models.CharField(max_length=200)
    votes = models.IntegerField(default=0)


class Choice(models.Model):
    question = models.ForeignKey(Question, models.CASCADE)
    choice_text = models.CharField(max_length=200)

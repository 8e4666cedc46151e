"""Small helpers shared by the transaction tests."""

from tests.testapp.models import Question


def titles():
    """The question texts in the database, sorted (sync code)."""
    return sorted(Question.objects.values_list("question_text", flat=True))


async def atitles():
    """The question texts in the database, sorted (awaited)."""
    return sorted(await Question.objects.values_list("question_text", flat=True))


class Boom(Exception):
    """The exception a test block raises to roll back."""

"""An AsyncCommand with a plain sync handle: it behaves as a BaseCommand."""

from dualcall.management import AsyncCommand
from tests.testapp.models import Question


class Command(AsyncCommand):
    help = "Report how many questions there are."

    def handle(self, *args, **options):
        return f"total {Question.objects.count()}"

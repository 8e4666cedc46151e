"""An async management command for the tests: creates and counts questions."""

from django.core.management.base import CommandError

from dualcall.management import AsyncCommand
from tests.testapp.models import Question


class Command(AsyncCommand):
    help = "Create questions and report how many there are."

    def add_arguments(self, parser):
        parser.add_argument("texts", nargs="*")
        parser.add_argument("--fail", type=int, help="Raise CommandError with this exit code.")
        parser.add_argument("--crash", action="store_true", help="Raise a plain exception.")

    async def handle(self, *args, texts=(), fail=None, crash=False, **options):
        for text in texts:
            await Question.objects.create(question_text=text)
        if fail is not None:
            self.stderr.write("about to fail")
            raise CommandError(f"failing with {fail}", returncode=fail)
        if crash:
            raise ZeroDivisionError("crash")
        count = await Question.objects.count()
        self.stdout.write(f"created {len(texts)}")
        if options["verbosity"] > 1:
            self.stderr.write("verbose")
        return f"total {count}"

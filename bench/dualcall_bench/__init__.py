"""The models `make bench` measures: a Question and its Choices."""

import os
from typing import Any


def postgres_database(
    engine: str = "django.db.backends.postgresql", **extra: Any
) -> dict[str, Any]:
    """A ``DATABASES`` entry for the bench's PostgreSQL server (``PGHOST``, ``PGPORT``...)."""
    return {
        "ENGINE": engine,
        "HOST": os.environ["PGHOST"],
        "PORT": os.environ.get("PGPORT", "5432"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "NAME": os.environ.get("PGDATABASE", "postgres"),
        **extra,
    }

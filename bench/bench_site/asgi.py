"""The ASGI application uvicorn serves: ``bench_site.asgi:application``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_site.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()

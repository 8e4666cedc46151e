"""The ASGI application that uvicorn serves: ``uvicorn demosite.asgi:application``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demosite.settings")

application = get_asgi_application()

from django.apps import AppConfig


class DemositeConfig(AppConfig):
    """The project package as an app: its templates and management commands."""

    name = "demosite"

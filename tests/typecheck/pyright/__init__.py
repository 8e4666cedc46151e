"""What pyright (django-types, no plugin) accepts in async code with dualcall: see pyright.sh."""

"""A minimal Django project served by devserve through its ASGI and its WSGI entry point."""

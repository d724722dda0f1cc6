"""devserve: an ASGI application server with a control panel."""

__version__ = "0.1.0"

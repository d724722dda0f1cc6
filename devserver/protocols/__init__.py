"""Wire protocols: bytes from a transport in, ASGI events to the app, bytes back out."""

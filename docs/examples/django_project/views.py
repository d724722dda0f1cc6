"""Views of the example Django project: JSON, a validated POST form and a streamed body."""

from __future__ import annotations

from collections.abc import Iterator

from django import forms
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST


class ContactForm(forms.Form):
    name = forms.CharField(max_length=50)
    email = forms.EmailField()
    message = forms.CharField(max_length=1000)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """Says which of the project's entry points (asgi.py or wsgi.py) served the request."""
    handler = "asgi" if isinstance(request, ASGIRequest) else "wsgi"
    return JsonResponse({"framework": "django", "handler": handler})


@csrf_exempt  # an API for scripts, not a browser form; a browser form would send a CSRF token
@require_POST
def contact(request: HttpRequest) -> HttpResponse:
    form = ContactForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    return JsonResponse({"thanks": form.cleaned_data["name"]}, status=201)


@require_GET
def countdown(request: HttpRequest, start: int) -> HttpResponse:
    """A body sent line by line as it is produced, without a Content-Length.

    Django's ASGI handler warns that it has to iterate this synchronous generator for an async
    server (it does so in a thread); an async generator would make the WSGI handler warn instead.
    """

    def lines() -> Iterator[str]:
        for n in range(start, 0, -1):
            yield f"{n}\n"
        yield "liftoff\n"

    return StreamingHttpResponse(lines(), content_type="text/plain")

"""URL routes of the example Django project; anything else is Django's own 404."""

from __future__ import annotations

from django.urls import path

from django_project import views

urlpatterns = [
    path("", views.index),
    path("contact/", views.contact),
    path("countdown/<int:start>/", views.countdown),
]

"""Serving from Django: an async view, under ASGI or WSGI alike.

Example, in ``urls.py``::

    from stepwell.sdk.serve.django import urls
    from shop.functions import app

    urlpatterns = [*urls(app)]                      # the engine calls /api/stepwell

Call requests can be several MiB: raise ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (Django's default is
2.5 MiB) to at least 5 MiB, or set it to None.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from stepwell.sdk.app import App
from stepwell.sdk.serve._handler import ServeHandler, ServeRequest

DEFAULT_PATH = "api/stepwell"

View = Callable[[Any], Awaitable[Any]]


def django_view(app: App, **options: Any) -> View:
    """An async Django view serving ``app``, exempt from CSRF checks (the engine signs its
    requests instead). ``options`` are :class:`~stepwell.sdk.serve.ServeHandler`'s."""
    from django.http import HttpResponse  # type: ignore[import-untyped]

    options.setdefault("framework", "django")
    handler = ServeHandler(app, **options)

    async def serve(request: Any) -> HttpResponse:
        served = ServeRequest.build(
            request.method, request.build_absolute_uri(), request.headers.items(), request.body
        )
        answer = await handler.handle(served)
        response = HttpResponse(answer.body, status=answer.status)
        for name, value in answer.headers.items():
            response.headers[name] = value
        return response

    # What django.views.decorators.csrf.csrf_exempt does, without rewrapping the coroutine
    # function (which Django before 5.0 cannot do).
    serve.csrf_exempt = True  # type: ignore[attr-defined]
    return serve


def urls(app: App, path: str = DEFAULT_PATH, **options: Any) -> list[Any]:
    """URL patterns for ``urlpatterns``: the serve view at ``path`` (no leading slash)."""
    from django.urls import path as route  # type: ignore[import-untyped]

    return [route(path.lstrip("/"), django_view(app, **options), name="stepwell-serve")]

"""The Django test site's URL conf; the serve tests fill ``urlpatterns`` once Django is set up."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []

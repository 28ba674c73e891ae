"""Archived media (placeholder: being completed)."""

from __future__ import annotations

from callstream.api.app import Handler

ROUTES: dict[str, Handler] = {}

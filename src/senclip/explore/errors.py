"""Errors of the map explorer that carry the HTTP status a request for them gets.

The library functions raise them; the web layer (:mod:`senclip.explore.app`) turns each into a
JSON body ``{"error": message, "status": status}`` with that status. They are
:class:`~senclip.errors.SenclipError`\\ s, so a library user catches them like any other.
"""

from __future__ import annotations

from senclip.errors import SenclipError


class ExploreError(SenclipError):
    """A request the explorer cannot answer; ``status`` is its HTTP status."""

    status = 400


class BadRequest(ExploreError):
    """Malformed parameters: z/x/y that are not tile indexes, numbers that are not numbers."""

    status = 400


class NotFound(ExploreError):
    """An unknown layer or class, a layer whose file was not given, a tile or point off the map."""

    status = 404


class Unprocessable(ExploreError):
    """A well-formed request that cannot be done: an empty text query, one over the length limit."""

    status = 422

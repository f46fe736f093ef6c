"""How the API writes JSON: the one renderer its NinjaAPI uses (app.py), and the answer for a
document that is already in its response schema's shape.

django-ninja validates what a view returns against the operation's response schema and dumps
it again before rendering; for a run start that is about a fifth of the web CPU spent outside
the service. `rendered` skips both for a document built field for field, in the schema's order,
from what was just written (`documents.run_document` of a new run); the test of each caller
checks that the bytes are those the schema's path writes.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja.renderers import JSONRenderer

RENDERER = JSONRenderer()
CONTENT_TYPE = f"{RENDERER.media_type}; charset={RENDERER.charset}"


def rendered(request: HttpRequest, document: Any, *, status: int) -> HttpResponse:
    """The response django-ninja would write for `document`, without validating it first."""
    return HttpResponse(RENDERER.render(request, document, response_status=status),
                        status=status, content_type=CONTENT_TYPE)

"""The "API tokens" page of the admin: a user's own tokens (mounted by workflows/admin_site.py).

Anyone who can open the admin — people who sign in with OpenID Connect included, who have no
password for `create_api_token` to be run for — creates a token for themselves here. The raw
token is in the answer to that POST only (never in a message, which would keep it in the
session or a cookie), with `Cache-Control: no-store`; only its hash is stored
(`services.tokens`). Revoking works on one's own tokens only; another user's id is a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin import AdminSite
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from workflows.admin_views.edge import positive_int, problems_message
from workflows.admin_views.home import site_context
from workflows.errors import WorkflowError
from workflows.services.tokens import api_token_create_own, api_token_revoke_own, api_tokens_of


def my_tokens_page(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """GET: the user's tokens and a form for a new one. POST: create it and show it once."""
    context = site_context(request, site, "API tokens")
    status = 200
    if request.method == "POST":
        try:
            token, raw = api_token_create_own(user=request.user,
                                              name=request.POST.get("name", "")[:100])
            context.update(new_token=token, raw_token=raw)
        except WorkflowError as exc:
            context["error"] = problems_message(exc) if exc.details else str(exc)
            status = exc.http_status
    context["tokens"] = api_tokens_of(user=request.user)
    response = TemplateResponse(request, "workflows/my_tokens.html", context, status=status)
    add_never_cache_headers(response)
    return response


@require_POST
def my_token_revoke(request: HttpRequest, site: AdminSite, token_id: str) -> HttpResponse:
    number = positive_int(token_id)
    if number is None:
        raise Http404("No such token.")
    try:
        token = api_token_revoke_own(user=request.user, token_id=number)
    except WorkflowError as exc:
        raise Http404(str(exc)) from None
    messages.success(request, f"Token {token.prefix}… revoked.")
    return HttpResponseRedirect(reverse("admin:my_tokens"))

import pytest

from workflows.models import ApiToken
from workflows.services.tokens import api_token_authenticate, api_token_create

pytestmark = pytest.mark.django_db


def test_an_admin_creates_a_token_in_the_admin_and_sees_it_once(users, client):
    client.force_login(users["admin"])
    response = client.post("/admin/workflows/apitoken/add/",
                           {"user": users["support"].pk, "name": "ci"}, follow=True)
    assert response.status_code == 200
    token = ApiToken.objects.get(user=users["support"])
    shown = [str(m) for m in response.context["messages"]]
    raw = next(m for m in shown if "shown once" in m).split("<code>")[1].split("</code>")[0]
    assert api_token_authenticate(raw) == users["support"]
    assert token.prefix == raw[:10] and raw not in token.token_hash


def test_the_revoke_action_revokes(users, client):
    token, raw = api_token_create(user=users["support"])
    client.force_login(users["admin"])
    client.post("/admin/workflows/apitoken/", {"action": "revoke_tokens",
                                               "_selected_action": [token.pk]})
    assert api_token_authenticate(raw) is None

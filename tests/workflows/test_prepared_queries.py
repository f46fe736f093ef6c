"""PreparedQuery: the ORM's own SQL compiled once, run again with other values."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.api.conftest import make_user
from tests.factories import make_flow, simple_definition
from workflows.api.lookups import get_flow_row
from workflows.errors import NotFound
from workflows.models import ApiToken, Flow
from workflows.permissions import _user_permissions, has_permission
from workflows.prepared_queries import PreparedQuery, concrete_attnames
from workflows.services.tokens import api_token_authenticate, api_token_create

pytestmark = pytest.mark.django_db


def _orm_permissions(user):
    return list(Permission.objects.filter(Q(user=user) | Q(group__user=user))
                .values_list("content_type__app_label", "codename").distinct())


def test_rows_are_the_orms_rows_in_its_order_in_one_statement():
    user = make_user("mixed", "operators", "support")
    user.user_permissions.add(Permission.objects.get(codename="edit_draft"))
    expected = _orm_permissions(user)
    assert ("workflows", "edit_draft") in expected and len(expected) > 5
    with CaptureQueriesContext(connection) as queries:
        assert _user_permissions.rows(user.pk) == expected
    assert len(queries) == 1
    assert _user_permissions.rows(make_user("nobody").pk) == []


def test_rows_pass_through_the_orms_converters():
    """SQLite hands back datetimes as text and booleans as integers; the rows are typed as the
    ORM would type them."""
    user = make_user("typed")
    token, raw = api_token_create(user=user)
    used = timezone.now() - timedelta(hours=3)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=used)
    query = PreparedQuery(
        ApiToken, lambda digest: ApiToken.objects.filter(token_hash=digest).order_by()
        .values_list("last_used_at", "user__is_active", "user__date_joined"),
        sentinel="x" * 64)
    [(last_used_at, is_active, joined)] = query.rows(token.token_hash)
    assert (last_used_at, is_active, joined) == (used, True, user.date_joined)
    assert is_active is True and timezone.is_aware(last_used_at)


def test_a_lookup_that_changes_its_value_is_refused_when_compiled():
    query = PreparedQuery(Flow, lambda text: Flow.objects.filter(slug__contains=text)
                          .values_list("pk"), sentinel="sentinel")
    with pytest.raises(ImproperlyConfigured):
        query.rows("anything")


def test_a_value_of_another_type_than_the_sentinel_goes_through_the_orm():
    flow = make_flow(simple_definition("typed-value"))
    query = PreparedQuery(Flow, lambda pk: Flow.objects.filter(pk=pk).values_list("slug"),
                          sentinel=-1)
    assert query.rows(str(flow.pk)) == [("typed-value",)] == query.rows(flow.pk)


def test_the_flow_row_is_the_orms_row():
    make_flow(simple_definition("same-row"))
    flow = get_flow_row("same-row")
    expected = Flow.objects.get(slug="same-row")
    assert [getattr(flow, name) for name in concrete_attnames(Flow)] == \
        [getattr(expected, name) for name in concrete_attnames(Flow)]
    assert flow._state.adding is False and flow._state.db == "default"
    with pytest.raises(NotFound):
        get_flow_row("no-such-flow")


def test_the_token_answers_the_orms_user_and_nothing_is_kept_between_calls():
    user = make_user("tokened", "operators")
    _, raw = api_token_create(user=user)
    found = api_token_authenticate(raw)
    assert [getattr(found, name) for name in concrete_attnames(type(user))] == \
        [getattr(user, name) for name in concrete_attnames(type(user))]
    assert found._state.adding is False
    user.is_active = False
    user.save()
    assert api_token_authenticate(raw) is None


def test_a_permission_taken_away_counts_from_the_next_read():
    user = make_user("leaving", "operators")
    assert has_permission(make_user_copy(user), "workflows.operate_run")
    user.groups.remove(Group.objects.get(name="operators"))
    assert not has_permission(make_user_copy(user), "workflows.operate_run")


def make_user_copy(user):
    """A fresh user object, as each request authenticates one."""
    return type(user).objects.get(pk=user.pk)

"""Fixtures for the approvals tests."""

import pytest
from django.contrib.auth.models import Group, User


@pytest.fixture
def reviewer():
    user = User.objects.create_user("rita")
    user.groups.add(Group.objects.get(name="reviewers"))
    return user

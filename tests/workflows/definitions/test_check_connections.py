"""validate_definition(check_connections=True): the promotion check, in one query."""

import pytest

from tests.workflows.definitions.samples import nightly, problems_of
from workflows.definitions import validate_definition


def _connection(name: str, kind: str):
    from connections.models import Connection

    return Connection.objects.create(name=name, kind=kind)


@pytest.mark.django_db
def test_check_connections_accepts_existing_connections_of_a_fitting_kind(
    django_assert_num_queries,
):
    _connection("reports-api", "http")
    definition = nightly()
    definition["steps"][1]["args"]["conn"] = "{{ connections.reports-api }}"
    with django_assert_num_queries(1):
        validate_definition(definition, check_connections=True)


@pytest.mark.django_db
def test_check_connections_reports_missing_ones_at_their_paths_in_one_query(
    django_assert_num_queries,
):
    definition = nightly()
    definition["steps"][1]["args"]["conn"] = "{{ connections.build-vm }}"
    with django_assert_num_queries(1):
        problems = problems_of(definition, check_connections=True)
    assert problems == [
        {"path": "steps[0].connection", "message": "no connection named 'reports-api'"},
        {"path": "steps[1].args.conn", "message": "no connection named 'build-vm'"},
    ]


@pytest.mark.django_db
def test_check_connections_reports_a_connection_of_the_wrong_kind():
    _connection("reports-api", "ssh")
    [problem] = problems_of(nightly(), check_connections=True)
    assert problem["path"] == "steps[0].connection"
    assert "is a ssh connection; a http step needs generic or http" in problem["message"]


@pytest.mark.django_db
def test_a_generic_connection_fits_an_http_step():
    _connection("reports-api", "generic")
    validate_definition(nightly(), check_connections=True)


def test_connections_are_not_looked_up_unless_asked():
    validate_definition(nightly())  # no django_db mark: a query would fail the test

"""parse_definition: YAML/JSON text in; document problems; values JSON cannot hold."""

import json

import pytest

from tests.workflows.definitions.samples import NIGHTLY_REPORT
from workflows.definitions import parse_definition
from workflows.errors import DefinitionInvalid


def test_parse_definition_reads_yaml_json_bytes_and_dicts_alike():
    from_yaml = parse_definition(NIGHTLY_REPORT)
    from_json = parse_definition(json.dumps(from_yaml))
    from_bytes = parse_definition(NIGHTLY_REPORT.encode())
    from_dict = parse_definition(from_yaml)
    assert from_yaml == from_json == from_bytes == from_dict
    assert from_dict is not from_yaml


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("slug: x\nsteps: [1, 2\nname: y\n", "line 3, column 5"),
        ("slug: [unclosed", "YAML error at line 1"),
        ("", "empty"),
        ("- a\n- b\n", "got list"),
        ("just text", "got string"),
        (b"\xff\xfe", "not UTF-8"),
        ("a: &a [*a]", "deeper than"),
    ],
)
def test_parse_definition_reports_document_problems_at_the_document(source, fragment):
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition(source)
    [problem] = caught.value.problems
    assert problem["path"] == "(document)"
    assert fragment in problem["message"]


def test_parse_definition_refuses_alias_bombs():
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition("\n".join(laughs))
    assert "too large" in caught.value.problems[0]["message"]


def test_nul_characters_from_yaml_escapes_are_refused_with_their_path():
    from workflows.definitions import parse_definition, validate_definition
    from workflows.errors import DefinitionInvalid

    text = 'slug: nul\nname: "a\\0b"\nsteps:\n  - {key: a, type: python, action: core.echo}\n'
    with pytest.raises(DefinitionInvalid) as info:
        validate_definition(parse_definition(text))
    assert {"path": "name", "message": "text cannot contain NUL characters"} in info.value.problems


@pytest.mark.parametrize("source", [
    "slug: deep\nsteps: " + "[" * 800 + "]" * 800,             # 1.6 KB of flow YAML
    '{"slug": "deep", "steps": ' + "[" * 800 + "]" * 800 + "}",  # the same as JSON text
    "slug: deep\nsteps:\n" + "".join("  " * i + "- a:\n" for i in range(1, 80)),
])
def test_deeply_nested_text_is_refused_before_the_parser_recurses(source):
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition(source)
    assert caught.value.problems[0]["message"] == "the document nests deeper than 64 levels"

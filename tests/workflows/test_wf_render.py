"""The admin's renderers (workflows/templatetags/wf_render.py), called and used as filters."""

from __future__ import annotations

from django.template import Context, Template

from workflows.templatetags.wf_render import duration_label, json_html, status_badge


def test_json_html_escapes_and_folds():
    html = str(json_html({"a": "<script>x</script>", "b": [1, 2.5, True, None],
                          "long": "y" * 1000, "many": {str(i): i for i in range(20)}}))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count('<details class="j-fold">') == 2
    assert '<span class="j-bool">true</span>' in html and '<span class="j-null">null</span>' in html


def test_templates_load_the_renderers_as_filters():
    template = Template("{% load wf_render %}{{ s|status_badge }}|{{ s|status_label }}|"
                        "{{ ms|duration_label }}|{{ v|json_html }}")
    out = template.render(Context({"s": "waiting_for_approval", "ms": 185_000,
                                   "v": {"k": "<b>"}}))
    badge, label, duration, json_part = out.split("|")
    assert badge == str(status_badge("waiting_for_approval"))  # not escaped twice
    assert label == "waiting for approval"
    assert duration == duration_label(185_000) == "3 m 05 s"
    assert json_part == str(json_html({"k": "<b>"})) and "&lt;b&gt;" in json_part

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


def test_when_shows_the_current_zone_with_its_abbreviation_and_the_relative_time_on_hover():
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from workflows.templatetags.wf_render import when, when_text

    moment = datetime(2026, 1, 15, 13, 5, 9, tzinfo=UTC)
    with timezone.override(ZoneInfo("Europe/Paris")):
        html = str(when(moment))
        assert ">2026-01-15 14:05 CET</time>" in html
        assert 'datetime="2026-01-15T13:05:09Z"' in html  # machine-readable, UTC
        assert ">2026-01-15 14:05:09 CET<" in str(when(moment, "seconds"))
        assert when_text(moment).startswith("2026-01-15 14:05 CET (")
        summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
        assert ">2026-07-01 14:00 CEST<" in str(when(summer))
    assert ">2026-01-15 13:05 UTC<" in str(when(moment))  # settings.TIME_ZONE
    now = timezone.now()
    assert 'title="3\xa0hours ago"' in str(when(now - timedelta(hours=3, seconds=5)))
    assert 'title="in 2\xa0days' in str(when(now + timedelta(days=2, minutes=1)))
    assert 'title="just now"' in str(when(now))
    assert when(None) == "" and when_text(None) == ""


def test_when_is_a_filter_that_is_not_escaped_twice():
    from datetime import UTC, datetime

    out = Template('{% load wf_render %}{{ t|when }}|{{ t|when:"seconds" }}|{{ t|when_text }}'
                   ).render(Context({"t": datetime(2026, 1, 15, 13, 5, 9, tzinfo=UTC)}))
    html, seconds, text = out.split("|")
    assert html.startswith("<time ") and seconds.endswith("13:05:09 UTC</time>")
    assert text.startswith("2026-01-15 13:05 UTC (")


def test_a_long_list_or_object_shows_its_first_items_and_how_many_more():
    html = str(json_html({"items": list(range(10_000)), "map": {f"k{i}": i for i in range(250)}}))
    assert html.count('class="j-num"') == 200 + 200
    assert "… 9,800 more items (10,000 in all); the API has the whole value" in html
    assert "… 50 more keys (250 in all)" in html
    short = str(json_html(list(range(200))))
    assert "data-items-cut" not in short and short.count('class="j-num"') == 200

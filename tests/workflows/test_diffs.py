"""Unified diffs shown to reviewers (issue 20, "Diffs for reviewers"): parsed with unidiff,
rendered with the templates' escaping, long diffs folded per file, malformed ones shown as
plain text."""

from __future__ import annotations

import pytest
from django.urls import reverse

from approvals.models import Approval
from resources.payloads import storable_json
from resources.services import resource_create
from tests.admin.conftest import login, make_user
from tests.factories import drain, make_flow
from workflows.diffs import FOLD_ABOVE_LINES, MAX_DIFF_BYTES, diff_parse, looks_like_diff
from workflows.models import Run
from workflows.services.runs import run_start
from workflows.templatetags.wf_render import as_diff, json_html, resource_card

PATCH = """diff --git a/app/views.py b/app/views.py
index 83db48f..bf269f4 100644
--- a/app/views.py
+++ b/app/views.py
@@ -1,4 +1,4 @@ def index(request):
 import os
-TITLE = "old"
+TITLE = "<script>alert(1)</script>"
 
 def index(request):
diff --git a/README.md b/README.md
new file mode 100644
index 0000000..e69de29
--- /dev/null
+++ b/README.md
@@ -0,0 +1,2 @@
+# Hello
+world
"""


def test_a_patch_is_parsed_into_files_hunks_and_lines():
    diff = diff_parse(PATCH)
    assert [f.path for f in diff.files] == ["app/views.py", "README.md"]
    views, readme = diff.files
    assert (views.status, views.added, views.removed) == ("modified", 1, 1)
    assert readme.status == "added" and readme.added == 2
    kinds = [line.kind for line in views.hunks[0].lines]
    assert kinds == ["ctx", "del", "add", "ctx", "ctx"]
    assert (diff.added, diff.removed) == (3, 1) and not diff.folded


@pytest.mark.parametrize("text", [
    "plain text", "@@ -1 +1 @@ but no file header", "--- a\n+++ b\n no hunk", "", None, 42,
    "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n",  # a hunk that promises lines it does not have
    "--- a/x\n+++ b/x\n@@ -1,1 +1,1 @@\n-a\n+b\n@@ -9,1 +9,1 @@\n-\x00\n",  # truncated
])
def test_what_is_not_a_well_formed_diff_is_not_rendered_as_one(text):
    assert as_diff(text) == ""
    json_html(text)  # and the JSON view shows it as a string without raising


def test_a_rendered_diff_colours_its_lines_and_escapes_them():
    html = str(as_diff(PATCH))
    assert 'data-render="diff"' in html
    assert html.count('data-line="add"') == 3 and html.count('data-line="del"') == 1
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'data-diff-file="README.md"' in html and " open" in html


def test_a_long_diff_folds_each_file():
    body = "".join(f"+line {i}\n" for i in range(FOLD_ABOVE_LINES))
    long = (f"--- a/a.txt\n+++ b/a.txt\n@@ -0,0 +1,{FOLD_ABOVE_LINES} @@\n{body}"
            "--- a/b.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-x\n+y\n")
    assert diff_parse(long).folded
    html = str(as_diff(long))
    assert "data-folded" in html and "<details class=\"wf-diff-file\" data-diff-file=\"a.txt\">" in html


def test_an_oversized_diff_stays_text():
    huge = PATCH + "+" + "x" * MAX_DIFF_BYTES + "\n"
    assert not looks_like_diff(huge) and diff_parse(huge) is None


def test_a_diff_inside_a_json_value_renders_as_a_diff():
    html = str(json_html({"patch": PATCH, "other": "text"}))
    assert 'data-render="diff"' in html and '&quot;text&quot;' in html


@pytest.mark.django_db
def test_a_text_x_diff_resource_renders_as_a_diff_in_its_card():
    resource = resource_create(content=PATCH.encode(), name="change.patch",
                               content_type="text/x-diff")
    descriptor = {"$resource": resource.uri, "size": resource.size, "sha256": resource.sha256,
                  "content_type": "text/x-diff", "preview": None, "reason": "binary"}
    html = str(resource_card(descriptor))
    assert 'data-render="diff"' in html and 'data-line="add"' in html
    binary = resource_create(content=b"\x89PNG\x00", name="x.png", content_type="text/x-diff")
    html = str(resource_card({**descriptor, "$resource": binary.uri}))
    assert 'data-render="diff"' not in html  # not a diff: shown as the usual card


@pytest.mark.django_db
def test_the_reviewer_sees_the_agents_patch_as_a_diff_in_the_approval_card():
    flow = make_flow({
        "slug": "agent-review", "name": "Agent review",
        "steps": [
            {"key": "agent", "type": "python", "action": "core.echo", "args": {"patch": PATCH}},
            {"key": "review", "type": "approval", "assignees": {"groups": ["reviewers"]},
             "instructions": "Review the change", "show": ["{{ steps.agent.output.patch }}"]},
        ],
    })
    run, _ = run_start(flow=flow, input={})
    drain()
    approval = Approval.objects.get(run=run)
    client = login(make_user("rita", "reviewers"))
    page = client.get(reverse("admin:approvals_approval_change", args=[approval.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-render="diff"' in html and 'data-line="del"' in html
    assert "<script>alert(1)</script>" not in html
    panel = client.get(reverse("admin:workflows_run_step", args=[run.pk, "agent"]))
    assert panel.status_code == 200 and 'data-render="diff"' in panel.content.decode()
    assert Run.objects.get(pk=run.pk).status == "waiting_for_approval"


@pytest.mark.django_db
def test_a_large_patch_output_kept_as_a_resource_still_renders_in_the_card():
    big = PATCH + "--- a/f.txt\n+++ b/f.txt\n@@ -0,0 +1,10 @@\n" + "".join(
        f"+filler {i}\n" for i in range(10))
    descriptor = storable_json(big, limit=10)
    html = str(json_html({"patch": descriptor}))
    assert "wf-resource-card" in html and 'data-render="diff"' in html
    assert html.count('data-line="add"') == 13

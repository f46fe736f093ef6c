"""Load the demo flows in workflows/demo/*.yaml (in name order), release and promote each.

Idempotent: a flow whose slug already exists is left alone, whatever its versions, so running
`make run` again never duplicates or overwrites a demo someone has edited.
"""

from pathlib import Path

import yaml
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from workflows.errors import DefinitionInvalid
from workflows.models import Flow

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
# The approval demo asks this group. The roles migration creates it; make sure it is there.
DEMO_GROUPS = ("reviewers",)
MISSING_CONNECTION = "no connection named "


class Command(BaseCommand):
    help = "Create, release and promote the demo flows in workflows/demo/ (skips existing slugs)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dir",
            dest="directory",
            type=Path,
            default=DEMO_DIR,
            help="Directory of *.yaml flow definitions.",
        )

    def handle(self, *args, directory: Path, **options):
        from workflows.services.flows import flow_create, flow_promote, flow_release

        paths = sorted(directory.glob("*.yaml"))
        if not paths:
            raise CommandError(f"no *.yaml flow definitions in {directory}")
        for name in DEMO_GROUPS:
            Group.objects.get_or_create(name=name)

        for path in paths:
            text = path.read_text()
            try:
                slug = (yaml.safe_load(text) or {}).get("slug")
            except yaml.YAMLError as exc:
                raise CommandError(f"{path.name}: not valid YAML: {exc}") from exc
            if not slug:
                raise CommandError(f"{path.name}: the definition has no slug")
            if Flow.objects.filter(slug=slug).exists():
                self.stdout.write(f"{slug}: exists, skipped")
                continue
            try:
                with transaction.atomic():
                    flow = flow_create(definition=text)
                    version = flow_release(flow=flow, notes=f"Demo flow from {path.name}")
                    flow_promote(flow=flow, number=version.number)
            except DefinitionInvalid as exc:
                if not all(p["message"].startswith(MISSING_CONNECTION) for p in exc.problems):
                    details = "\n".join(f"  {p['path']}: {p['message']}" for p in exc.problems)
                    raise CommandError(f"{path.name}: {exc}\n{details}") from exc
                # A demo that needs a machine of yours (the agent demo's build-vm): load it
                # as a draft; releasing it waits until the connection exists.
                flow_create(definition=text)
                missing = sorted({p["message"].split("'")[1] for p in exc.problems})
                self.stdout.write(self.style.WARNING(
                    f"{slug}: loaded as a draft; create connection(s) {', '.join(missing)}, "
                    "then release and promote it"))
                continue
            self.stdout.write(self.style.SUCCESS(f"{slug}: loaded, v{version.number} is live"))

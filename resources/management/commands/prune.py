"""`python manage.py prune [--dry-run] [--batch-size N]`: retention, by hand.

Prints one JSON document: what was removed (with --dry-run, what would be). The same pass runs
daily as the django-q2 schedule `resources-prune`.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from resources.retention import runs_prune


class Command(BaseCommand):
    help = "Delete ended runs past retention with their rows and files; print what went as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true",
                            help="count what would be removed; remove nothing")
        parser.add_argument("--batch-size", type=int, default=100,
                            help="runs per transaction (default 100)")

    def handle(self, *args, dry_run: bool = False, batch_size: int = 100, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        report = runs_prune(now=timezone.now(), dry_run=dry_run, batch_size=batch_size)
        self.stdout.write(json.dumps(report, indent=2, sort_keys=True))

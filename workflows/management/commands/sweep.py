import json

from django.core.management.base import BaseCommand

from workflows.engine.sweeper import sweep


class Command(BaseCommand):
    help = "Run one repair pass of the engine (normally a django-q2 schedule every minute)."

    def handle(self, *args, **options):
        self.stdout.write(json.dumps(sweep()))

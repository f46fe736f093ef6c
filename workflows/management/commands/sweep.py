import json

from django.core.management.base import BaseCommand

from workflows.services.maintenance import sweep_all


class Command(BaseCommand):
    help = "Run one repair pass of the engine (normally a django-q2 schedule every minute)."

    def handle(self, *args, **options):
        self.stdout.write(json.dumps(sweep_all()))

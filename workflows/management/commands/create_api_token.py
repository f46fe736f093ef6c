"""`python manage.py create_api_token USERNAME [--name NAME]` prints {"token": "..."} once."""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from workflows.services.tokens import api_token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it once as JSON: {\"token\": \"...\"}."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label to tell tokens apart.")

    def handle(self, *args, username: str, name: str, **options):
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist:
            raise CommandError(f"no user {username!r}") from None
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        token, raw = api_token_create(user=user, name=name or "created with create_api_token")
        self.stdout.write(json.dumps({"token": raw}))

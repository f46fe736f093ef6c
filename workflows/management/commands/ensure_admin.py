"""Make sure an `admin` superuser exists, for the one-command local setup (`make run`).

The password is random and printed once, when the user is created; it is never stored in
clear anywhere. Later calls only say that the user exists and never touch its password.
"""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import IntegrityError, transaction


class Command(BaseCommand):
    help = "Create the superuser `admin` with a random password (printed once) if it is missing."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@example.com")

    def handle(self, *args, username: str, email: str, **options):
        user_model = get_user_model()
        users = user_model._default_manager
        if users.filter(**{user_model.USERNAME_FIELD: username}).exists():
            self._exists(username)
            return
        password = secrets.token_urlsafe(18)
        try:
            with transaction.atomic():
                users.create_superuser(username=username, email=email, password=password)
        except IntegrityError:  # created by a concurrent call a moment ago
            self._exists(username)
            return
        self.stdout.write(
            self.style.SUCCESS(f"Created superuser {username!r}. This password is shown once:")
        )
        self.stdout.write(f"\n    username: {username}\n    password: {password}\n")

    def _exists(self, username: str) -> None:
        self.stdout.write(
            f"Superuser {username!r} already exists; its password is unchanged "
            f"(reset it with `python manage.py changepassword {username}`)."
        )

"""Make a user a reviewer (`python manage.py create_reviewer rita --email rita@example.com`).

Signing in to the admin needs staff status, reviewers included; the reviewers group gives what
a reviewer may see and decide, and nothing else. `approvals.services.reviewer_ensure` sets both
and no other permission; a new user's random password is printed once.
"""

from django.core.management.base import BaseCommand, CommandError

from approvals.services import reviewer_ensure
from workflows.errors import WorkflowError


class Command(BaseCommand):
    help = ("Create or update a reviewer: staff status (to sign in to the admin) and the "
            "reviewers group, no other permission. A new user's password is printed once.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")

    def handle(self, *args, username: str, email: str, **options):
        try:
            user, created, password = reviewer_ensure(username=username.strip(), email=email)
        except WorkflowError as exc:
            raise CommandError(str(exc)) from exc
        if created:
            self.stdout.write(self.style.SUCCESS(
                f"Created reviewer {user.username!r} (staff, group reviewers). "
                "This password is shown once:"))
            self.stdout.write(f"\n    username: {user.username}\n    password: {password}\n")
        else:
            self.stdout.write(f"{user.username!r} is a reviewer: staff status and the "
                              "reviewers group; other permissions unchanged.")

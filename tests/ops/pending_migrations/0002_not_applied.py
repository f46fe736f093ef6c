"""A migration the test database has never applied: /readyz must report it pending."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("ops", "0001_initial")]
    operations = []

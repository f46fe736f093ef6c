"""The real first migration of ops, under the name the loader expects here."""

import importlib

Migration = importlib.import_module("ops.migrations.0001_initial").Migration

"""The HTTP API under /api/v1 (CONTRACT.md "HTTP API"): a thin layer over the services.

Each endpoint validates its input (schemas in `schemas`), calls one service or selector, and
shapes the output (`documents`). Domain errors become statuses in one place (`errors`).
"""

from workflows.api.app import api

__all__ = ["api"]

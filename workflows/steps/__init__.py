"""Step types, one module each. Importing this package registers them all."""

from workflows.steps import actions, approval, http, python, wait  # noqa: F401
from workflows.steps.base import (  # noqa: F401
    StepCanceled, StepContext, StepFailed, StepOutcome, StepType, get_step_type,
    register_step_type, step_type_names,
)

# The ssh step type lives in workflows/steps/ssh.py (registered when present).
try:
    from workflows.steps import ssh  # noqa: F401
except ImportError:  # pragma: no cover - the module arrives with the remote-work issue
    pass

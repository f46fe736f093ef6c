"""Step types, one module each. Importing this package registers them all."""

from workflows.steps import actions, approval, http, python, ssh, wait  # noqa: F401
from workflows.steps.base import (  # noqa: F401
    StepCanceled,
    StepContext,
    StepFailed,
    StepOutcome,
    StepType,
    get_step_type,
    register_step_type,
    step_type_names,
)

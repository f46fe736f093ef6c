"""Step types, one module each. Importing this package registers the built-in ones; an app adds
its own in `AppConfig.ready()` (the approval step lives in `approvals.steps`)."""

from workflows.steps import actions, http, python, ssh, wait  # noqa: F401
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

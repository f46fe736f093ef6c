"""config.settings without the lean path of the callback siblings (bench/agents.py --http): a
heartbeat then goes through every middleware and django-ninja, as before issue 20's fix."""

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE

MIDDLEWARE = [m for m in MIDDLEWARE if m != "workflows.api.agent_callbacks.AgentCallbackMiddleware"]

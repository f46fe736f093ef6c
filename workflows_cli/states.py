"""The run and step states after which nothing changes again: a copy of
`workflows.states.RUN_TERMINAL` and `STEP_TERMINAL`, because the CLI imports nothing of the
server (tests/cli/test_package.py keeps the copies equal)."""

TERMINAL_RUN = frozenset({"completed", "failed", "canceled"})
TERMINAL_STEP = frozenset({"completed", "failed", "canceled", "rejected", "skipped"})

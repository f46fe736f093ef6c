"""`wf`: the command-line client. It speaks only the HTTP API (never the database) and prints
one JSON document on stdout per command (indent 2, sorted keys), so scripts and agents can rely
on its output. It imports nothing of Django or of the server's apps (an import-linter contract
says so), so it starts fast and runs anywhere httpx does.

Modules: `client` (HTTP, errors, exit codes), `config` (profiles stored by `wf auth login`),
`output` (what goes to stdout and stderr, and `--jq`), `watch` (following a run), `states` (the
terminal states), `commands/` (one module per group of commands, each registering its own
arguments) and `parser` (the parser and `main`, the console script's entry point). docs/cli.md
describes every command.

Exit codes: 0 success; 1 permission refused (403), or `wf runs watch` on a run that failed; 2
usage; 3 not found (404), or no valid token (401: the message says `wf auth login`); 4 conflict
or validation (400, 409, 410, 413, 415, 422); 5 server or network error (5xx, 429, connection
refused, timeouts). On failure the document is `{"error": {...}}`: the API's error object, or
one the CLI makes (codes usage, jq_invalid, network_error, timeout, ...).
"""

"""`wf`: the command-line client. It speaks only the HTTP API (never the database) and prints
one JSON document on stdout per command (indent 2, sorted keys), so scripts and agents can rely
on its output. It imports nothing of Django or of the server's apps (an import-linter contract
says so), so it starts fast and runs anywhere httpx does.

Modules: `client` (HTTP, errors, exit codes), `output` (what goes to stdout and stderr),
`states` (the terminal states), `commands/` (one module per group of commands, each registering
its own arguments) and `parser` (the parser and `main`, the console script's entry point).

Exit codes: 0 success; 1 authentication or permission refused (401, 403); 2 usage; 3 not
found (404); 4 conflict or validation (400, 409, 410, 413, 415, 422); 5 server or network error
(5xx, 429, connection refused, timeouts). On failure the document is `{"error": {...}}`: the
API's error object, or one the CLI makes (codes usage, network_error, timeout, ...).
"""

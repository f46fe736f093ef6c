"""gunicorn settings for the web process (`make serve`, the Procfile's `web`), from the environment.

Requests spend most of their time waiting on the database, so each worker process runs threads
(the `gthread` worker): WEB_CONCURRENCY processes x WEB_THREADS threads serve that many requests
at once. Each thread keeps its own database connection (DB_CONN_MAX_AGE), so PostgreSQL sees up
to WEB_CONCURRENCY x WEB_THREADS connections per web instance. See docs/operations.md.
"""

import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


bind = f"{os.environ.get('HOST', '127.0.0.1')}:{_int('PORT', 8000)}"
# Two processes per core (at least two, so one busy process never stalls every request).
workers = _int("WEB_CONCURRENCY", max(2, 2 * (os.cpu_count() or 1)))
threads = _int("WEB_THREADS", 4)
worker_class = "gthread"
# A request that takes longer than this is cut off and its worker restarted.
timeout = _int("WEB_TIMEOUT", 60)
graceful_timeout = 30
keepalive = 5
# Restart a worker after this many requests (with jitter) to bound any slow leak; 0 turns it off.
max_requests = _int("WEB_MAX_REQUESTS", 10000)
max_requests_jitter = max_requests // 10
# Heartbeat files in memory, not on a possibly slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG", "").lower() in {"1", "true", "yes", "on"} else None
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "info")
# Behind a proxy that sets X-Forwarded-Proto, list its addresses here (comma separated).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# gunicorn's runtime control socket (`gunicornc`) lives at one fixed path per user by default,
# which two servers on one machine would share; it is off unless WEB_CONTROL_SOCKET names a path.
control_socket_disable = not os.environ.get("WEB_CONTROL_SOCKET")
if os.environ.get("WEB_CONTROL_SOCKET"):
    control_socket = os.environ["WEB_CONTROL_SOCKET"]

"""django-q2's Redis broker, with one Redis client per process instead of one per task sent.

`django_q.tasks.async_task` builds a new broker for every task it is not handed one for, and
django-q2's Redis broker builds a new client with it: a new connection pool and a new TCP
connection (connect, HELLO, CLIENT SETINFO) for each task. That was about 1.2 ms of the web
server's CPU per run start (its first steps are sent when the start commits), and as much on
a worker for every step it hands on (docs/performance.md "Throughput").

`SharedClientRedis` is the same broker whose `get_connection` answers one client per process
and Redis configuration. redis-py's pool is thread-safe, hands out a connection per command
and starts over in a forked child (it checks the pid), and the client retries a command on a
broken connection as it did before; so each task is one RPUSH on a kept connection and
nothing else changes. settings.py selects it (`Q_CLUSTER["broker_class"]`) when REDIS_URL is
set. This module imports nothing from the apps.
"""

from __future__ import annotations

import threading

from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf

_clients: dict[str, object] = {}
_lock = threading.Lock()


class SharedClientRedis(Redis):
    @staticmethod
    def get_connection(list_key: str | None = None):
        if Conf.DJANGO_REDIS:  # a django-redis cache's client: pooled already
            return Redis.get_connection(list_key)
        key = repr(Conf.REDIS)
        client = _clients.get(key)
        if client is None:
            with _lock:
                client = _clients.get(key)
                if client is None:
                    client = _clients[key] = Redis.get_connection(list_key)
        return client

"""With REDIS_URL the throttle counts in Redis, shared by every web process."""

from __future__ import annotations

import pytest
from django.core.cache.backends.redis import RedisCache
from django.test import RequestFactory

from workflows.api.auth import AnonThrottle


@pytest.fixture
def redis_caches(redis_url):
    """Two independent cache clients on the test Redis, as two web processes would have."""
    params = {"KEY_PREFIX": "wf-test-throttle"}
    first, second = RedisCache(redis_url, params), RedisCache(redis_url, params)
    first.clear()
    yield first, second
    first.clear()


def throttle_on(cache) -> AnonThrottle:
    throttle = AnonThrottle()
    throttle.cache = cache
    return throttle


def test_two_processes_share_the_anonymous_throttle_count(redis_caches, settings):
    settings.WF_ANON_THROTTLE = "3/m"
    first, second = redis_caches
    request = RequestFactory().post("/api/v1/callbacks/x", REMOTE_ADDR="203.0.113.7")
    # two requests through the first process, one through the second: the limit is reached
    assert throttle_on(first).allow_request(request)
    assert throttle_on(first).allow_request(request)
    assert throttle_on(second).allow_request(request)
    assert not throttle_on(first).allow_request(request)
    assert not throttle_on(second).allow_request(request)
    other = RequestFactory().post("/api/v1/callbacks/x", REMOTE_ADDR="203.0.113.8")
    assert throttle_on(second).allow_request(other)


def test_the_default_cache_is_redis_when_redis_url_is_set(tmp_path, redis_url):
    import os
    import subprocess
    import sys
    from pathlib import Path

    source = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); "
         "from django.core.cache import caches; print(type(caches['default']).__name__)"],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(source), "DEBUG": "true",
             "DJANGO_SETTINGS_MODULE": "config.settings", "REDIS_URL": redis_url},
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "RedisCache"

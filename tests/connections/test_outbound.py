"""The outbound policy (connections/outbound.py, issue 25 M1): unspecified and integer forms
count as loopback, IPv4-embedded IPv6 forms are judged by their IPv4 address, the metadata
services of the major providers are refused by default even when WF_HTTP_DENY is narrowed,
and the release check judges a URL as written without a DNS lookup."""

from __future__ import annotations

import ipaddress

import pytest

from connections.outbound import (
    destination_problem,
    is_internal,
    judged_addresses,
    own_origin_problem,
    url_problem,
)

LOOPBACK_DENIED = ["127.0.0.0/8", "::1"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "0", "0.0.0.7", "2130706433",
                                  "0177.0.0.1", "127.1", "0x7f000001", "::127.0.0.1",
                                  "::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1",
                                  "localhost"])
def test_unspecified_integer_and_embedded_forms_of_loopback_are_refused_with_loopback(
        settings, host):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], LOOPBACK_DENIED
    reason = destination_problem(host, 80)
    assert reason and "in WF_HTTP_DENY" in reason


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "0"])
def test_unspecified_addresses_count_as_loopback_even_when_only_one_family_is_denied(
        settings, host):
    settings.WF_HTTP_ALLOW = []
    for denied in (["127.0.0.1"], ["::1"]):
        settings.WF_HTTP_DENY = denied
        assert destination_problem(host, 80), (host, denied)


@pytest.mark.parametrize("host", [
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16",
    "192.0.0.192", "metadata.google.internal", "METADATA.GOOGLE.INTERNAL.", "metadata.goog",
    "64:ff9b::a9fe:a9fe", "::a9fe:a9fe", "::ffff:a9fe:a9fe", "::169.254.169.254",
    "2002:a9fe:a9fe::1", "2002:6464:64c8::", "::ffff:100.100.100.200", "2852039166",
])
def test_cloud_metadata_addresses_are_refused_even_with_a_narrowed_deny_list(settings, host):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], ["10.0.0.0/8"]
    reason = destination_problem(host, 80)
    assert reason and ("metadata" in reason) and "WF_HTTP_ALLOW" in reason


def test_the_allow_list_lifts_the_metadata_refusal_only_for_what_it_names(settings):
    settings.WF_HTTP_DENY = []
    settings.WF_HTTP_ALLOW = ["100.100.100.200"]
    assert destination_problem("100.100.100.200", 80) is None
    assert destination_problem("::ffff:100.100.100.200", 80) is None
    assert "not in WF_HTTP_ALLOW" in destination_problem("168.63.129.16", 80)
    settings.WF_HTTP_ALLOW = ["127.0.0.1"]
    assert "not in WF_HTTP_ALLOW" in destination_problem("0.0.0.0", 80)  # ::1 is not allowed
    settings.WF_HTTP_ALLOW = ["127.0.0.1", "::1"]
    assert destination_problem("0.0.0.0", 80) is None


def test_public_and_private_addresses_stay_reachable_by_default(settings):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], []
    for host in ("93.184.216.34", "10.1.2.3", "2606:4700::1111", "0.0.0.0", "::", "127.0.0.1"):
        assert destination_problem(host, 80) is None, host


def test_judged_addresses_unwrap_and_expand():
    def judged(text):
        return [str(a) for a in judged_addresses(ipaddress.ip_address(text))]

    assert judged("64:ff9b::a9fe:a9fe") == ["64:ff9b::a9fe:a9fe", "169.254.169.254"]
    assert judged("::ffff:10.0.0.1") == ["::ffff:a00:1", "10.0.0.1"]
    assert judged("0.0.0.0") == ["0.0.0.0", "127.0.0.1", "::1"]
    assert judged("::") == ["::", "127.0.0.1", "::1"]
    assert judged("::1") == ["::1"]
    assert judged("8.8.8.8") == ["8.8.8.8"]


def test_the_release_check_judges_the_url_as_written_without_a_lookup(settings, monkeypatch):
    settings.WF_HTTP_ALLOW, settings.WF_HTTP_DENY = [], LOOPBACK_DENIED

    def no_dns(*args, **kwargs):
        if not kwargs.get("flags"):
            raise AssertionError("a release check made a DNS lookup")
        raise OSError("numeric only")

    monkeypatch.setattr("socket.getaddrinfo", no_dns)
    assert url_problem("http://localhost:9/x", names=False)
    assert url_problem("http://[::ffff:a9fe:a9fe]/", names=False)
    assert url_problem("https://hooks.example.com/x", names=False) is None


def test_is_internal_names_what_is_not_the_public_internet():
    assert is_internal("127.0.0.1", 80) and is_internal("10.0.0.1", 80)
    assert is_internal("::ffff:192.168.1.1", 80) and is_internal("0.0.0.0", 80)
    assert is_internal("no-such-host.invalid", 80)
    assert not is_internal("93.184.216.34", 443)


def test_own_origin_covers_the_public_url_the_served_port_and_loopback(settings):
    settings.PUBLIC_BASE_URL = "https://workflows.example.com"
    settings.WF_SERVED_PORT = 8000
    settings.ALLOWED_HOSTS = ["workflows.example.com", "localhost", "127.0.0.1"]
    for url in ("https://workflows.example.com/api/v1/hooks/x",
                "https://WORKFLOWS.example.com:443/api/v1/hooks/x",
                "http://workflows.example.com:8000/api/v1/hooks/x",
                "http://127.0.0.1:8000/api/v1/hooks/x", "http://localhost:8000/api/v1/hooks/x",
                "http://[::1]:8000/api/v1/hooks/x", "http://0.0.0.0:8000/api/v1/hooks/x",
                "http://2130706433:8000/api/v1/hooks/x", "https://127.0.0.1/api/v1/hooks/x"):
        assert own_origin_problem(url, names=False), url
    for url in ("https://hooks.slack.com/services/T/B/X", "http://127.0.0.1:9000/x",
                "http://workflows.example.com:9000/x"):
        assert own_origin_problem(url, names=False) is None, url

"""Where http steps may send requests (issue 10 item 9): outbound safety, apart from the http
step so its transport can change without touching the rule.

Every request an http step sends (each hop, should redirects ever be followed) passes
`check_destination` through an httpx request hook. The host is resolved and every address it
resolves to is checked:

1. `WF_HTTP_DENY` (CIDRs, addresses and host names) refuses, always.
2. `WF_HTTP_ALLOW`, when set, is an allowlist: only destinations matching it are reached, and
   matching it lifts the built-in refusal below for them.
3. Built in: link-local addresses (169.254.0.0/16, fe80::/10), where cloud metadata services
   answer, and the AWS metadata address fd00:ec2::254 are refused unless allowed.

Loopback and private networks are reachable by default (a step often calls a service next to
the worker); deny them with `WF_HTTP_DENY` where that is wrong. Host entries match the name
exactly (case-insensitive); `.example.com` or `*.example.com` also match every subdomain.

A refusal is `DestinationRefused`, never retried, raised before anything is sent. Known limit:
the address is checked when the request is prepared and the connection resolves the name again
(a DNS answer that changes in between is not caught); `WF_HTTP_ALLOW` by address avoids it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from django.conf import settings

from workflows.steps.base import StepFailed

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

BUILT_IN_DENY = (
    ipaddress.ip_network("169.254.0.0/16"),   # IPv4 link-local: 169.254.169.254 metadata
    ipaddress.ip_network("fe80::/10"),        # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
)


class DestinationRefused(StepFailed):
    """The request's destination is refused by the outbound policy. Never retried: the same
    destination would be refused again; nothing was sent."""

    def __init__(self, message: str):
        super().__init__(message, error_type="DestinationRefused", retryable=False)


@dataclass(frozen=True)
class Rules:
    networks: tuple[IPNetwork, ...]
    hosts: tuple[str, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Rules:
        networks: list[IPNetwork] = []
        hosts: list[str] = []
        for entry in entries:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.append(entry.removeprefix("*"))
        return cls(tuple(networks), tuple(hosts))

    def __bool__(self) -> bool:
        return bool(self.networks or self.hosts)

    def matches_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == h or (h.startswith(".") and (host.endswith(h) or host == h[1:]))
                   for h in self.hosts)

    def matches_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks
                   if network.version == address.version)


def _normalized(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (the literal itself for an IP). Empty when it does not
    resolve: the request then fails as it would have, with nothing sent."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def destination_problem(host: str, port: int) -> str | None:
    """Why a request to `host:port` is refused, or None when it may go."""
    deny = Rules.parse(settings.WF_HTTP_DENY)
    allow = Rules.parse(settings.WF_HTTP_ALLOW)
    if deny.matches_host(host):
        return f"{host} is in WF_HTTP_DENY"
    host_allowed = allow.matches_host(host)
    for raw in resolve(host, port):
        address = _normalized(raw)
        if deny.matches_address(address):
            return f"{host} resolves to {address}, in WF_HTTP_DENY"
        if host_allowed or allow.matches_address(address):
            continue
        if allow:
            return f"{host} ({address}) is not in WF_HTTP_ALLOW"
        if any(address in network for network in BUILT_IN_DENY
               if network.version == address.version):
            return (f"{host} resolves to {address}, a link-local or cloud metadata address; "
                    "list it in WF_HTTP_ALLOW to reach it")
    return None


def check_destination(request: httpx.Request) -> None:
    """httpx request hook: raise DestinationRefused before `request` is sent."""
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    reason = destination_problem(url.host, port)
    if reason:
        raise DestinationRefused(f"refused to send {request.method} {url}: {reason}; "
                                 "nothing was sent")


EVENT_HOOKS = {"request": [check_destination]}

"""The outbound policy: where the platform may send a request (issue 10 item 9, issue 25 H2/M1).

One rule for every request the platform makes on someone's behalf: http steps, notification
webhooks, connection tests, and the OIDC and OTel endpoints when those land. It lives here, in
the layer below the engine, so each sender (a step type, a service, an exporter) imports the
same check. Senders call it twice:

- **at release time** on the URL as written (`url_problem(url, names=False)`: literal and
  numeric addresses, `localhost`, the host-name rules; no DNS lookup, so a release never waits
  on a resolver while it holds the flow's lock): a refused URL is a 422 naming the field;
- **at send time** on every address the host resolves to (`check_request`, an httpx request
  hook, or `url_problem` before a send without httpx). Redirects are never followed by any
  sender: a 3xx is the answer (the http step returns it, a notification counts it as a failed
  delivery), so no hop can lead somewhere the first check did not see.

How an address is judged:

1. `WF_HTTP_DENY` (CIDRs, addresses and host names) refuses, always.
2. `WF_HTTP_ALLOW`, when set, is an allowlist: only destinations matching it are reached, and
   matching it lifts the built-in refusal below for them.
3. Built in, refused unless allowed, whatever WF_HTTP_DENY says: link-local addresses
   (169.254.0.0/16, fe80::/10) and the cloud metadata services of the major providers
   (`METADATA_NETWORKS`, `METADATA_HOSTS`).

Before judging, an address is reduced to what a connection to it reaches: an unspecified
address (`0.0.0.0` and the rest of 0.0.0.0/8, `::`; also written `0`) reaches this machine, so
it is judged as loopback (127.0.0.1 and ::1 both, refused if either is); an IPv6 address that
embeds an IPv4 one (`::ffff:a.b.c.d`, `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`,
Teredo) is judged by the IPv4 address too. Integer and short forms (`2130706433`, `0177.0.0.1`,
`127.1`) are read by the resolver exactly as the connection will read them.

Loopback and private networks are reachable by default (a step often calls a service next to
the worker); deny them with `WF_HTTP_DENY` where that is wrong. Host entries match the name
exactly (case-insensitive); `.example.com` or `*.example.com` also match every subdomain.

Known limit: the address is checked when the request is prepared and the connection resolves
the name again (a DNS answer that changes in between is not caught); `WF_HTTP_ALLOW` by
address avoids it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

__all__ = [
    "OutboundRefused",
    "check_request",
    "destination_problem",
    "is_internal",
    "judged_addresses",
    "own_origin_problem",
    "url_problem",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LINK_LOCAL = (
    ipaddress.ip_network("169.254.0.0/16"),   # 169.254.169.254 (AWS, GCP, Azure, OCI, DO, …),
    ipaddress.ip_network("fe80::/10"),        # 169.254.170.2 (ECS), 169.254.0.23 (Tencent)
)
METADATA_NETWORKS = (
    ipaddress.ip_network("fd00:ec2::254/128"),    # AWS instance metadata over IPv6
    ipaddress.ip_network("100.100.100.200/32"),   # Alibaba Cloud
    ipaddress.ip_network("168.63.129.16/32"),     # Azure wire server
    ipaddress.ip_network("192.0.0.192/32"),       # Oracle Cloud (classic)
)
METADATA_HOSTS = ("metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                  "instance-data.ec2.internal", "metadata.tencentyun.com")
BUILT_IN_DENY = LINK_LOCAL + METADATA_NETWORKS
LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


class OutboundRefused(Exception):
    """A destination the outbound policy refuses; nothing was sent. `reason` says why (for the
    operator's log and the sender's own error; a run-visible error may say less)."""

    def __init__(self, reason: str):
        super().__init__(f"refused by the outbound policy: {reason}")
        self.reason = reason


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
        return _within(address, self.networks)


def _within(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address in network for network in networks if network.version == address.version)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def judged_addresses(address: IPAddress) -> list[IPAddress]:
    """`address` and what a connection to it reaches: the IPv4 address an IPv6 form embeds,
    and loopback (both families) for an unspecified address. Each is judged; one refused
    refuses the destination."""
    judged: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            judged.append(embedded)
    if any(a.is_unspecified or (a.version == 4 and a in THIS_NETWORK) for a in judged):
        judged += [a for a in LOOPBACK if a not in judged]
    return judged


def resolve(host: str, port: int, *, names: bool = True) -> list[IPAddress]:
    """Every address `host` resolves to (the literal itself for an IP address), as the
    connection will read it (so `2130706433` and `0177.0.0.1` are 127.0.0.1). Empty when it
    does not resolve: the request then fails as it would have, with nothing sent. With
    `names=False` no lookup is made: numeric forms and `localhost` (RFC 6761) only."""
    try:
        return [ipaddress.ip_address(host.strip("[]").split("%", 1)[0])]
    except ValueError:
        pass
    if not names and (host.lower().rstrip(".") == "localhost"
                      or host.lower().rstrip(".").endswith(".localhost")):
        return list(LOOPBACK)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=0 if names else socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def destination_problem(host: str, port: int, *, names: bool = True) -> str | None:
    """Why a request to `host:port` is refused, or None when it may go. `names=False` (the
    release check) judges the host as written, without a DNS lookup."""
    deny = Rules.parse(settings.WF_HTTP_DENY)
    allow = Rules.parse(settings.WF_HTTP_ALLOW)
    bare = host.strip("[]")
    if deny.matches_host(bare):
        return f"{bare} is in WF_HTTP_DENY"
    host_allowed = allow.matches_host(bare)
    if not host_allowed and bare.lower().rstrip(".") in METADATA_HOSTS:
        return (f"{bare} is a cloud metadata service; list it in WF_HTTP_ALLOW to reach it")
    for raw in resolve(bare, port, names=names):
        judged = judged_addresses(raw)
        shown = raw if len(judged) == 1 else f"{raw} (judged as {', '.join(map(str, judged[1:]))})"
        if any(deny.matches_address(a) for a in judged):
            return f"{bare} resolves to {shown}, in WF_HTTP_DENY"
        if host_allowed or allow.matches_address(raw) \
                or all(allow.matches_address(a) for a in judged[1:] or judged):
            continue
        if allow:
            return f"{bare} ({shown}) is not in WF_HTTP_ALLOW"
        if any(_within(a, BUILT_IN_DENY) for a in judged):
            return (f"{bare} resolves to {shown}, a link-local or cloud metadata address; "
                    "list it in WF_HTTP_ALLOW to reach it")
    return None


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def url_problem(url: str, *, names: bool = True) -> str | None:
    """Why a request to the absolute http(s) `url` is refused, or None when it may go (a URL
    that does not parse is left to the sender's own validation). `names=False`: see
    destination_problem."""
    try:
        parts = urlsplit(url)
        port = parts.port or default_port(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return destination_problem(parts.hostname, port, names=names)


def is_internal(host: str, port: int) -> bool:
    """Whether `host` reaches anything but the public internet (loopback, private, link-local,
    reserved, or it does not resolve): a send's low-level error about such a target is not
    recorded where run readers see it, so events never map internal ports."""
    addresses = resolve(host.strip("[]"), port)
    return not addresses or any(not a.is_global for raw in addresses
                                for a in judged_addresses(raw))


def check_request(request) -> None:
    """httpx request hook: raise OutboundRefused before `request` is sent."""
    url = request.url
    reason = destination_problem(url.host, url.port or default_port(url.scheme))
    if reason:
        raise OutboundRefused(reason)


EVENT_HOOKS = {"request": [check_request]}


def own_origin_problem(url: str, *, names: bool = True) -> str | None:
    """Why `url` points at this platform itself, or None. A notification is never a delivery to
    the platform (it would start runs of its own, H3 of issue 25), so its URL may not name:
    PUBLIC_BASE_URL's host and port; a host of ALLOWED_HOSTS, a loopback or unspecified
    address, or a name resolving to one or to PUBLIC_BASE_URL's addresses, on PUBLIC_BASE_URL's
    port or the port the server listens on (WF_SERVED_PORT, gunicorn's PORT)."""
    try:
        parts = urlsplit(url)
        port = parts.port or default_port(parts.scheme)
        public = urlsplit(settings.PUBLIC_BASE_URL)
        public_port = public.port or default_port(public.scheme)
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    public_host = (public.hostname or "").rstrip(".")
    if not host:
        return None
    refused = (f"{host}:{port} is this platform itself (PUBLIC_BASE_URL "
               f"{settings.PUBLIC_BASE_URL}); a notification is never sent to it")
    if host == public_host and port == public_port:
        return refused
    if port not in {public_port, int(settings.WF_SERVED_PORT)}:
        return None
    allowed_hosts = [h.lower().rstrip(".") for h in settings.ALLOWED_HOSTS if h and h != "*"]
    if any(host == h or (h.startswith(".") and (host.endswith(h) or host == h[1:]))
           for h in allowed_hosts):
        return refused
    addresses = {a for raw in resolve(host, port, names=names) for a in judged_addresses(raw)}
    if any(a.is_loopback or a.is_unspecified for a in addresses):
        return refused
    if names and public_host and addresses & set(resolve(public_host, public_port)):
        return refused
    return None

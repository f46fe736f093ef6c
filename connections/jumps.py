"""Jump-host chains: an ssh connection's `proxy_jump` names the ssh connection it is reached
through, which may name another, and so on.

`jump_chain` follows the chain over any lookup (a dict of connection documents in a worker, the
database elsewhere) and refuses a cycle, a missing connection and a connection that is not ssh,
naming the whole path ("vm → bastion → gone"). The services check the chain when a connection is
saved, the configuration checks when a flow is released, and the ssh step when it connects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connections.errors import ConnectionInvalid
from connections.models import Connection, ConnectionKind

__all__ = ["MAX_JUMPS", "JumpChainInvalid", "jump_chain", "jump_chain_names", "jump_problems"]

MAX_JUMPS = 8

Lookup = Callable[[str], dict[str, Any] | None]


class JumpChainInvalid(ConnectionInvalid):
    """The proxy_jump chain of a connection is broken; `chain` is the path followed."""

    def __init__(self, chain: list[str], message: str, *, path: str = "config.proxy_jump"):
        self.chain = chain
        self.reason = message
        super().__init__([{"path": path, "message": message}])


def _arrow(names: list[str]) -> str:
    return " → ".join(names)


def jump_chain(name: str, lookup: Lookup) -> list[str]:
    """[name, its jump host, that one's jump host, ...]. `lookup(n)` returns {"kind", "config"}
    or None. Raises JumpChainInvalid naming the path when the chain is broken."""
    chain = [name]
    current = lookup(name)
    while current is not None:
        jump = (current.get("config") or {}).get("proxy_jump")
        if not jump:
            return chain
        if not isinstance(jump, str):
            raise JumpChainInvalid(chain, f"proxy_jump of {chain[-1]!r} must be a connection name")
        if jump in chain:
            raise JumpChainInvalid(
                chain + [jump], f"proxy_jump chain {_arrow(chain + [jump])} is a cycle"
            )
        if len(chain) > MAX_JUMPS:
            raise JumpChainInvalid(
                chain, f"proxy_jump chain {_arrow(chain)} is longer than {MAX_JUMPS} hops"
            )
        chain.append(jump)
        current = lookup(jump)
        if current is None:
            raise JumpChainInvalid(
                chain, f"proxy_jump chain {_arrow(chain)}: no connection named {jump!r}"
            )
        if current.get("kind") != ConnectionKind.SSH:
            raise JumpChainInvalid(
                chain,
                f"proxy_jump chain {_arrow(chain)}: {jump!r} is a {current.get('kind')} "
                "connection; a jump host must be an ssh connection",
            )
    return chain


def _db_lookup(overrides: dict[str, dict[str, Any]] | None = None) -> Lookup:
    overrides = overrides or {}

    def lookup(name: str) -> dict[str, Any] | None:
        if name in overrides:
            return overrides[name]
        row = Connection.objects.filter(name=name).values("kind", "config").first()
        return None if row is None else {"kind": row["kind"], "config": row["config"] or {}}

    return lookup


def jump_chain_names(name: str) -> list[str]:
    """The connection names to load for connection `name`: itself and its jump hosts (one query
    per hop). A broken chain stops where it breaks; the step reports it when it connects."""
    try:
        return jump_chain(name, _db_lookup())
    except JumpChainInvalid as exc:
        return [n for n in exc.chain if n]


def jump_problems(
    *, name: str, kind: str, config: dict[str, Any], path: str = "config.proxy_jump"
) -> list[dict[str, str]]:
    """Problems with the chain of a connection about to be saved with these fields (its own
    row is read from the arguments, the jump hosts from the database)."""
    if kind != ConnectionKind.SSH or not config.get("proxy_jump"):
        return []
    lookup = _db_lookup({name: {"kind": kind, "config": config}})
    try:
        jump_chain(name, lookup)
    except JumpChainInvalid as exc:
        return [{"path": path, "message": exc.reason}]
    return []

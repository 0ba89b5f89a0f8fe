"""Close causes in people's words: who a close stands for, and what it means.

The journal says who closed (`client`, `upstream`, `proxy`) and why. A fault closes as
`proxy` with its own name as the reason; the scenario (or the fault records) tell which
fault type it was, and so whether it plays an intermediary (an nginx timeout, a reset)
or the client itself (`client-watchdog`, `client-abort`).
"""

from __future__ import annotations

from collections.abc import Mapping

from sseproxy.faults import get_fault
from sseproxy.report.heartbeats import FaultInfo
from sseproxy.report.records import Connection

__all__ = ["EXPLANATIONS", "explain", "side_of"]

EXPLANATIONS: Mapping[str, str] = {
    "client-closed": "the client closed: on purpose (tab closed, curl ended), a timeout of "
    "its own, or its network went away",
    "client-reset": "the client's connection was reset (crash, network, firewall)",
    "client-protocol-error": "the client broke HTTP",
    "upstream-end": "the server ended the response cleanly",
    "upstream-closed": "the server closed without a clean end of the response",
    "upstream-reset": "the server's connection was reset",
    "upstream-refused": "the upstream refused the connection (nothing listening)",
    "upstream-timeout": "connecting to the upstream timed out",
    "upstream-unreachable": "the upstream could not be reached",
    "upstream-protocol-error": "the upstream's response was not valid HTTP",
    "upstream-tls-error": "the TLS handshake with the https:// upstream failed (certificate "
    "not trusted or for another name, or the server does not speak TLS)",
    "proxy-overloaded": "the proxy turned the connection away: --max-connections reached (503) "
    "or out of file descriptors; the upstream was not contacted",
    "shutdown": "the proxy was stopped while the connection was open",
    "internal-error": "an error inside sseproxy (please report it)",
    "bad-request": "the request was not valid HTTP (400)",
    "head-too-large": "the request head was too large (431)",
    "client-header-timeout": "the client did not send a whole request head in time "
    "(--client-header-timeout: 408, or a close if it sent nothing)",
    "version-not-supported": "the client spoke an HTTP version other than 1.x (505)",
    "not-implemented": "the client asked for a method the proxy does not relay, "
    "such as CONNECT (501)",
    "cancelled": "the connection was cancelled",
}


def side_of(conn: Connection, faults: Mapping[str, FaultInfo]) -> tuple[str, str | None]:
    """(who the close stands for, the fault type when a fault closed it)."""
    by, reason = conn.by or "?", conn.reason or "?"
    if by == "client":
        return "client", None
    if by == "upstream":
        return "server", None
    info = faults.get(reason)
    fired = any(f.fault == reason for f in conn.faults)
    if info is not None or fired:
        kind = info.type if info is not None else None
        kind = kind or (reason if get_fault(reason) is not None else None)
        if kind is not None and kind.startswith("client-"):
            return "client (fault)", kind
        return "intermediary (fault)", kind
    if reason == "shutdown":
        return "proxy shutdown", None
    return "proxy", None


def explain(conn: Connection, fault_type: str | None) -> str:
    reason = conn.reason or "?"
    if fault_type is not None or reason not in EXPLANATIONS:
        cls = get_fault(fault_type or reason)
        if cls is not None:
            named = f"fault {reason!r}" if reason != cls.name else "fault"
            return f"{named} ({cls.name}): {cls.summary}"
        if any(f.fault == reason for f in conn.faults):
            return f"fault {reason!r}"
    return EXPLANATIONS.get(reason, reason)

"""The JSON-RPC side of the built-in server's MCP endpoints (`sseproxy.origin_mcp`).

The least a real MCP client (the `mcp` SDK's) needs to open a session and call a tool:
`initialize` (the client's protocol version when it is a handshake revision, else the
newest), `ping`, `logging/setLevel`, `tools/list`, and `tools/call` of `echo` (its
`text` back) and `instance` (which instance answered, so tests see where a balancer sent
them). Anything else is -32601. Transports call `answer`; it never raises.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = [
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "PROTOCOL_VERSIONS",
    "TOOLS",
    "Json",
    "answer",
    "dumps",
    "parse",
]

Json = dict[str, Any]
PROTOCOL_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
"""The initialize-handshake revisions answered (the SDK's HANDSHAKE_PROTOCOL_VERSIONS)."""
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
PARSE_ERROR: Final = -32700


def answer(message: Json, instance: str) -> Json | None:
    """The response to a JSON-RPC request; None for notifications and responses."""
    method, ident = message.get("method"), message.get("id")
    if not isinstance(method, str) or "id" not in message:
        return None
    params = message.get("params") or {}
    try:
        result = _result(method, params if isinstance(params, dict) else {}, instance)
    except _RpcError as error:
        error_body = {"code": error.code, "message": error.message}
        return {"jsonrpc": "2.0", "id": ident, "error": error_body}
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def _result(method: str, params: Json, instance: str) -> Json:
    if method == "initialize":
        asked = params.get("protocolVersion")
        version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1]
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}, "logging": {}},
            "serverInfo": {"name": f"sseproxy-origin {instance}", "version": "1"},
        }
    if method in ("ping", "logging/setLevel"):
        return {}
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        name, arguments = params.get("name"), params.get("arguments") or {}
        if name == "echo":
            text = str(arguments.get("text", ""))
        elif name == "instance":
            text = instance
        else:
            raise _RpcError(INVALID_PARAMS, f"Unknown tool: {name}")
        return {"content": [{"type": "text", "text": text}], "isError": False}
    raise _RpcError(METHOD_NOT_FOUND, "Method not found")


TOOLS: Final = [
    {
        "name": "echo",
        "description": "Return the text it is given.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
    {
        "name": "instance",
        "description": "Which instance of the built-in server answered.",
        "inputSchema": {"type": "object", "properties": {}},
    },
]


class _RpcError(Exception):
    """A JSON-RPC error response (code and message) instead of a result."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def dumps(value: object) -> str:
    """Compact JSON, as the SDK (pydantic) writes it."""
    return json.dumps(value, separators=(",", ":"))


def parse(body: bytes) -> Json | None:
    """A JSON-RPC 2.0 message, or None when the body is not one."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    return message if isinstance(message, dict) and message.get("jsonrpc") == "2.0" else None

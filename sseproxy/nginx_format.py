"""The nginx `log_format` that `sseproxy report --nginx-log` reads (data only: the CLI's
help shows it without loading the report).

nginx's `combined` format says neither how long a request lasted nor which upstream
served it, and nothing ties a line to the error log. This is combined plus `key=value`
fields that do: `rt` ($request_time), `urt` ($upstream_response_time), `upstream`
($upstream_addr), `conn` ($connection, the `*N` of the error log) and, optionally,
`accept` ($http_accept, which tells EventSource requests apart) and `msec` ($msec: when
the line was written, to the millisecond; $time_local is to the second).
"""

from __future__ import annotations

__all__ = ["ACCESS_LOG_LINE", "ERROR_LOG_LINE", "LOG_FORMAT", "REQUIRED_FIELDS"]

LOG_FORMAT = (
    'log_format sseproxy \'$remote_addr - $remote_user [$time_local] "$request" $status '
    '$body_bytes_sent "$http_referer" "$http_user_agent" rt=$request_time '
    'urt="$upstream_response_time" upstream="$upstream_addr" conn=$connection '
    'accept="$http_accept" msec=$msec\';'
)
"""The line to paste into nginx's `http { }` block."""

ACCESS_LOG_LINE = "access_log /var/log/nginx/access.log sseproxy;"
ERROR_LOG_LINE = "error_log /var/log/nginx/error.log info;"
"""At info level nginx logs a client's going away mid-stream; at the default (error) not."""

REQUIRED_FIELDS: tuple[tuple[str, str], ...] = (
    ("rt", "$request_time"),
    ("urt", "$upstream_response_time"),
    ("upstream", "$upstream_addr"),
    ("conn", "$connection"),
)
"""(key in the line, nginx variable): what the report cannot do without."""

"""TLS to the upstream (`https://` upstreams): the context, the handshake, its errors.

The proxy speaks plain HTTP (or raw TCP) to its clients and TLS to an `https://`
upstream, as nginx does with `proxy_pass https://...`: SNI and the certificate's name
are checked against the upstream's host, trusting the system's CAs, a CA file
(`--upstream-ca`), or nothing at all (`--upstream-insecure`, for self-signed test
servers). The handshake is part of connecting, so it runs within `--connect-timeout`
(nginx's `proxy_connect_timeout` covers its SSL handshake too); a handshake that fails
(an untrusted or mismatched certificate, a server that does not speak TLS) is the
upstream's fault: 502, journaled `upstream` / `upstream-tls-error` with the reason.

TLS has no half-close: `trio.SSLStream` is not a `HalfCloseableStream`, so where the
proxy would send a FIN to the upstream (TCP mode, the client half-closed) it sends
`close_notify` and closes the connection instead; what the upstream had not sent yet
is lost. A `reset` still sends an RST (`transport.abort` finds the socket under the
TLS stream).

The proxy can also listen with TLS (`--listen-cert`, `--listen-key`) for clients that
only speak https: the handshake happens on the connection's first read, within
`--client-header-timeout`; a `reset` towards such a client is still an RST.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

import trio

from sseproxy.errors import ConfigError
from sseproxy.transport import UpstreamError

__all__ = ["client_context", "default_context", "open_tls", "server_context"]


def client_context(
    ca_file: str | Path | None = None, *, insecure: bool = False, option: str = "--upstream-ca"
) -> ssl.SSLContext:
    """The context for upstream connections: the system's CAs, or those of `ca_file`;
    `insecure` checks neither the certificate nor its name. A CA file that cannot be
    read is a ConfigError (a one-line message naming `option`, exit 2)."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except FileNotFoundError:
            raise ConfigError(f"{option} {ca_file}: no such file") from None
        except (OSError, ssl.SSLError) as error:
            detail = getattr(error, "strerror", None) or error
            raise ConfigError(
                f"{option} {ca_file}: not a PEM file of CA certificates ({detail})"
            ) from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def server_context(cert_file: str | Path, key_file: str | Path | None = None) -> ssl.SSLContext:
    """The context for a TLS listener (`--listen-cert`, `--listen-key`): the certificate
    chain and its key (PEM; the key may be in the certificate's file). A file that cannot
    be read is a ConfigError."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert_file), None if key_file is None else str(key_file))
    except FileNotFoundError as error:
        raise ConfigError(f"--listen-cert/--listen-key: no such file: {error.filename}") from None
    except (OSError, ssl.SSLError) as error:
        detail = getattr(error, "strerror", None) or error
        raise ConfigError(
            f"--listen-cert {cert_file}: not a PEM certificate with its key ({detail})"
        ) from None
    return context


@functools.cache
def default_context() -> ssl.SSLContext:
    """The system's CAs, made once (loading them takes a few milliseconds)."""
    return client_context()


async def open_tls(
    stream: trio.abc.Stream,
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    timeout: float,
    deadline: float | None = None,
) -> trio.SSLStream[trio.abc.Stream]:
    """`stream` after a TLS handshake with `host` (SNI and the name checked), or
    UpstreamError: `tls-error` (502) with the reason, `timeout` (504) past `deadline`
    (default: `timeout` from now; the connect timeout covers connect and handshake).
    On an error the stream is closed."""
    where = f"{host}:{port}"
    # https_compatible: like browsers and nginx, do not insist on close_notify (HTTP's
    # own framing tells a cut body from a whole one) nor wait for the peer's on close.
    tls = trio.SSLStream(
        stream, context or default_context(), server_hostname=host, https_compatible=True
    )
    try:
        with trio.fail_at(trio.current_time() + timeout if deadline is None else deadline):
            await tls.do_handshake()
    except trio.TooSlowError:
        await trio.aclose_forcefully(stream)
        message = f"upstream {where} did not finish the TLS handshake within {timeout:g}s"
        raise UpstreamError("timeout", message) from None
    except trio.BrokenResourceError as error:
        await trio.aclose_forcefully(stream)
        message = f"TLS with upstream {where} failed: {_why(error)}"
        raise UpstreamError("tls-error", message) from None
    return tls


def _why(error: BaseException) -> str:
    """The handshake's failure in a few words: the certificate check's message, the
    alert the server sent, or that the connection ended."""
    cause = error.__cause__ or error.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate not accepted: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError) and cause.reason:
        words = cause.reason.lower().replace("_", " ")
        plain = cause.reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE")
        return f"{words} (is it an https server?)" if plain else words
    if isinstance(cause, ssl.SSLError):
        return str(cause)
    if isinstance(cause, OSError) and cause.strerror:
        return f"the connection broke ({cause.strerror})"
    return "the connection closed during the handshake (does it speak TLS?)"

"""Whether a server the shell is told to use (a Ray cluster, an MLflow tracking server) answers at all,
found in seconds: the clients of both retry an address where nothing listens for minutes."""
from __future__ import annotations

import socket
from urllib.parse import urlsplit


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of ``HOST:PORT`` or ``SCHEME://HOST[:PORT][/...]`` (http 80, https 443 by default);
    None for other forms (Ray's ``auto``)."""
    text = str(address)
    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a port that is not a number
        return None
    return (parts.hostname, port) if parts.hostname and port else None


def connect_problem(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing accepts a TCP connection at ``address`` (``host_port``), or None when something does or
    the address has no host and port to try."""
    target = host_port(address)
    if target is None:
        return None
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None

"""Who may do what on the kitchen page (docs/WEB.md, SAFETY invariant 7).

- A request whose ``Origin`` is not the page's own is refused, whatever it asks
  (another site's script cannot act, with or without the person's cookie).
- *Local*: from a loopback address, naming the daemon by an IP address, ``localhost``
  or the configured host (a site that points its own name at 127.0.0.1 is not local).
  A local request may read and take gas away (shutoff, lock, timer) with no token.
- Everything else needs the token: ``Authorization: Bearer <token>``, or the session
  cookie that signing in with the token sets. Giving gas back (unlock, cancel,
  extend, snooze) always needs it, and must still pass the trust rules (``web`` in
  the action's ``*_sources``, a fresh ``ts``).

Nothing here imports aiohttp: plain functions of a request's parts.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

COOKIE = "stove_ctl_session"
LOCAL_NAMES = {"localhost"}


def session_value(token: str) -> str:
    """The cookie's value: derived from the token (the token itself never sits in a
    cookie), and changed by a new token (a reload signs everyone out)."""
    return hmac.new(token.encode(), b"stove-ctl web session", hashlib.sha256).hexdigest()


def same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def authenticated(token: str | None, authorization: str | None, cookie: str | None) -> bool:
    """The request carries the token (a Bearer header) or a session cookie for it."""
    if not token:
        return False
    if authorization is not None and authorization.startswith("Bearer "):
        return same(authorization.removeprefix("Bearer ").strip(), token)
    return same(cookie, session_value(token))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def host_name(host: str) -> str:
    """``Host`` without its port: ``[::1]:8470`` -> ``[::1]``, ``a.b:80`` -> ``a.b``."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def local(remote: str | None, host: str | None, configured_host: str) -> bool:
    """From this machine, to a name no other site can take (DNS rebinding)."""
    if remote is None or host is None:
        return False
    try:
        loopback = ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
    name = host_name(host).lower()
    return loopback and (name in LOCAL_NAMES or _is_ip(name) or name == configured_host.lower())


def foreign_origin(origin: str | None, scheme: str, host: str | None) -> bool:
    """An ``Origin`` is present and is not this page's own (cross-site request)."""
    if origin is None:
        return False
    return host is None or origin.rstrip("/").lower() != f"{scheme}://{host}".lower()

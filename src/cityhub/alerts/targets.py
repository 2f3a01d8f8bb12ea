"""Where a webhook may POST: public addresses, and the hosts an admin allowed (``Settings.webhook_allow_hosts``).

Without this an operator key would make the hub a port scanner and a blind-POST tool inside its own network: its
loopback services (the hub itself, an MQTT broker beside it), cloud metadata at 169.254.169.254, the rest of the
LAN. A target is checked when the webhook is registered and again before every attempt, because what a name
resolves to changes; the attempt then connects to an address that passed that check (the name kept in ``Host`` and
TLS SNI), so a name cannot answer a public address to the check and an internal one to the connection (DNS
rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# What the delivery log says about a target that was not contacted. The log is read through the API by operator
# keys, so it stays this coarse: nothing that tells which internal address a name had.
REFUSED_NON_PUBLIC = "refused: non-public address"
REFUSED_INVALID = "refused: invalid URL"
UNRESOLVED = "failed: could not resolve host"

# At registration a host that does not resolve gets the same answer as one that resolves inside: two answers would
# tell an operator key which internal names exist.
CREATE_REFUSED = (
    "url's host resolves to a non-public address (loopback/private/link-local) or does not resolve, "
    "and is not in webhook_allow_hosts"
)
CREATE_INVALID = "url must be an http:// or https:// URL with a host"

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefused(Exception):
    """The target may not be contacted; ``outcome`` is what the delivery log says (one of the constants above)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def _translated(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 host an IPv6 address stands for (IPv4-mapped, or NAT64's well-known prefix), if it is one: such a
    connection reaches that IPv4 address, so it is judged as that address alone."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _tunnelled(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4 or Teredo address carries (a relay may deliver to it)."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is an ordinary internet unicast address.

    ``is_global`` is the base because it is IANA's special-purpose registries read the other way round, so it
    already excludes loopback, RFC 1918, link-local (cloud metadata), carrier-grade NAT 100.64/10, fc00::/7,
    documentation, benchmarking and reserved ranges without a list of our own to fall behind. The explicit tests
    cover what it lets through: multicast (global scope in the registry, still not a webhook receiver), the
    deprecated IPv6 site-local fec0::/10, ranges an older Python's tables lack, and IPv6 forms that carry an IPv4
    address: IPv4-mapped (::ffff:127.0.0.1) and NAT64 are judged by that address alone, 6to4 and Teredo are also
    refused when the address they carry is not public.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:  # a zone index only means something on this host's own links
            return False
        if ip.is_site_local:
            return False
        translated = _translated(ip)
        if translated is not None:
            return is_public(translated)
        tunnelled = _tunnelled(ip)
        if tunnelled is not None and not is_public(tunnelled):
            return False
    elif ip in _CGNAT:
        return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class AllowList:
    """``webhook_allow_hosts``: host names (as written in URLs, any case, a trailing dot ignored) and addresses."""

    names: frozenset[str]
    addresses: frozenset[IPAddress]

    @classmethod
    def parse(cls, text: str) -> AllowList:
        names: set[str] = set()
        addresses: set[IPAddress] = set()
        for item in text.split(","):
            entry = item.strip().strip("[]").lower().rstrip(".")
            if not entry:
                continue
            ip = _ip(entry)
            if ip is not None:
                addresses.add(ip)
            else:
                names.add(entry)
                names.add(_idna(entry))
        return cls(frozenset(names), frozenset(addresses))

    def allows_host(self, host: str, raw_host: str) -> bool:
        ip = _ip(host)
        if ip is not None:
            return ip in self.addresses
        return host.rstrip(".") in self.names or raw_host.rstrip(".") in self.names


def _idna(name: str) -> str:
    """A name as it appears in a parsed URL's ASCII host (so an allowed ``bücher.example`` matches either form)."""
    try:
        return httpx.URL(f"http://{name}/").raw_host.decode("ascii").lower()
    except (httpx.InvalidURL, UnicodeError):
        return name


@dataclass(frozen=True)
class Target:
    """A checked webhook URL and how to reach it."""

    url: httpx.URL
    # Addresses that passed the check, to connect to in this order; empty for a host the allow list names, which
    # is reached by name (any address it has is allowed).
    addresses: tuple[str, ...]

    def requests(self, limit: int = 3) -> Iterator[tuple[httpx.URL, dict[str, str], dict[str, Any]]]:
        """(URL, extra headers, request extensions) per address to try: the URL names the checked address, the
        ``Host`` header and TLS SNI (and so certificate verification) keep the host the operator gave."""
        if not self.addresses:
            yield self.url, {}, {}
            return
        host_header = self.url.netloc.decode("ascii")
        literal = _ip(self.url.host) is not None
        ext: dict[str, Any] = {}
        if self.url.scheme == "https" and not literal:
            ext["sni_hostname"] = self.url.raw_host.decode("ascii")
        for addr in self.addresses[:limit]:
            yield self.url.copy_with(host=addr), {"Host": host_header}, ext


def parse_url(url: str) -> httpx.URL:
    """The URL as the HTTP client will read it (checked and connected through the same parse, so no two parsers
    can disagree about which host a tricky URL names); :class:`TargetRefused` if it is not http(s) with a host."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, UnicodeError, TypeError):
        raise TargetRefused(REFUSED_INVALID) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise TargetRefused(REFUSED_INVALID)
    return parsed


def check(url: str, allow: str) -> Target:
    """Resolve ``url``'s host and check every address it has (one internal address among public ones is enough to
    refuse: the client could pick it). :class:`TargetRefused` when the target may not be contacted."""
    parsed = parse_url(url)
    allowed = AllowList.parse(allow)
    host, raw_host = parsed.host.lower(), parsed.raw_host.decode("ascii").lower()
    if allowed.allows_host(host, raw_host):
        return Target(parsed, ())
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(raw_host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise TargetRefused(UNRESOLVED) from None
    addresses: list[IPAddress] = []
    for info in infos:
        ip = _ip(str(info[4][0]))
        if ip is None:
            raise TargetRefused(REFUSED_NON_PUBLIC)  # not an IP socket address: nothing to connect to by URL
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise TargetRefused(UNRESOLVED)
    for ip in addresses:
        if not is_public(ip) and ip not in allowed.addresses:
            raise TargetRefused(REFUSED_NON_PUBLIC)
    return Target(parsed, tuple(str(ip) for ip in addresses))

"""Which webhook targets may be reached: the SSRF policy for task-run deliveries.

A target is vetted before every attempt: http(s) only, and — unless the config allows it —
every address the host resolves to must be public. :func:`vetted_address` hands back the
address that was checked so the request can go to it directly (see
:mod:`core.tasks.webhooks`), which keeps a DNS answer that changes between the check and the
connect (rebinding) from steering a delivery inside. Hosts the config trusts by name (or
every host, with ``allowPrivate``) are left to the HTTP client to resolve.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import SplitResult, urlsplit

import anyio.to_thread

from core.errors import ValidationFailed, field_error

__all__ = [
    "IPAddress",
    "Resolver",
    "WebhookPolicy",
    "check_target",
    "is_public_address",
    "resolve_host",
    "validate_webhook_url",
    "vetted_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses`` as strings; raises :class:`OSError` when it cannot resolve."""

_SCHEMES = {"http": 80, "https": 443}
# Only these characters can form an inet_aton IPv4 spelling (127.1, 0x7f.1, 2130706433);
# the pre-check keeps inet_aton's lenient parsing away from ordinary hostnames.
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class WebhookPolicy:
    """Which non-public targets are allowed (config ``webhooks.allowPrivate`` / ``allow``).

    ``allow`` holds hostnames (exact, case-insensitive), IP addresses or CIDRs.
    ``allow_private`` lifts the address restriction entirely.
    """

    allow_private: bool = False
    allow: Sequence[str] = ()
    _hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in self.allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(_canonical_host(entry))
        object.__setattr__(self, "_hosts", frozenset(hosts))
        object.__setattr__(self, "_networks", tuple(networks))

    def allows_host(self, host: str) -> bool:
        """Whether ``host`` is allow-listed by name."""
        return _canonical_host(host) in self._hosts

    def allows_address(self, address: IPAddress) -> bool:
        """Whether ``address`` may be reached: public, or allowed by the config."""
        if self.allow_private or is_public_address(address):
            return True
        return any(address.version == net.version and address in net for net in self._networks)


def _canonical_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def is_public_address(address: IPAddress) -> bool:
    """Whether ``address`` is a globally routable unicast address.

    False for loopback, private, shared (CGNAT), link-local, unique-local, multicast,
    reserved, documentation and unspecified ranges. IPv6 forms that embed an IPv4 address
    (IPv4-mapped, 6to4, NAT64) are judged by the address they embed.
    """
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return is_public_address(embedded)
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return False
    return address.is_global


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, including inet_aton spellings like ``127.1``."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _LEGACY_IPV4.fullmatch(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _split(url: str) -> SplitResult:
    """The parsed URL, or VALIDATION_ERROR on path ``webhook`` for a non-http(s) one."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - parsing the port is what validates it
    except ValueError as exc:
        raise field_error("webhook", f"not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in _SCHEMES:
        raise field_error("webhook", f"scheme must be http or https, not '{parts.scheme}'")
    if not parts.hostname:
        raise field_error("webhook", "URL has no host")
    return parts


def validate_webhook_url(url: str) -> str:
    """Cheap create-time check (scheme and host, no DNS); returns ``url`` unchanged."""
    _split(url)
    return url


async def resolve_host(host: str, port: int) -> list[str]:
    """The default :data:`Resolver`: ``getaddrinfo`` on a worker thread."""
    infos = await anyio.to_thread.run_sync(
        partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    )
    return [str(info[4][0]) for info in infos]


def _refusal(host: str, address: IPAddress) -> ValidationFailed:
    shown = host if host == str(address) else f"{host} ({address})"
    return field_error(
        "webhook",
        f"{shown} is not a public address; allow it with webhooks.allowPrivate or webhooks.allow",
    )


async def _resolve(resolver: Resolver, host: str, port: int) -> list[IPAddress]:
    """The resolver's answers as addresses; :class:`OSError` for any failure to resolve."""
    try:
        answers = await resolver(host, port)
        # Drop an IPv6 zone (fe80::1%eth0): the address alone decides what it is.
        addresses = [ipaddress.ip_address(answer.split("%")[0]) for answer in answers]
    except ValueError as exc:  # also UnicodeError, for a name IDNA cannot encode
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise OSError(f"no addresses for {host}")
    return addresses


async def vetted_address(
    url: str, policy: WebhookPolicy, resolver: Resolver = resolve_host
) -> IPAddress | None:
    """The address to connect to, or None to let the client resolve (a trusted host).

    Raises VALIDATION_ERROR (path ``webhook``) for a target the policy refuses and
    :class:`OSError` when the host cannot be resolved.
    """
    parts = _split(url)
    host = _canonical_host(parts.hostname or "")
    if policy.allow_private or policy.allows_host(host):
        return None
    literal = _literal_address(host)
    if literal is None and (host == "localhost" or host.endswith(".localhost")):
        # RFC 6761: these always mean this machine, whatever a resolver says.
        literal = ipaddress.IPv4Address("127.0.0.1")
    if literal is not None:
        candidates: list[IPAddress] = [literal]
    else:
        port = parts.port or _SCHEMES[parts.scheme.lower()]
        candidates = await _resolve(resolver, host, port)
    # Only the first is used, but a name with any non-public answer is refused outright.
    for address in candidates:
        if not policy.allows_address(address):
            raise _refusal(host, address)
    return candidates[0]


async def check_target(
    url: str, policy: WebhookPolicy, *, resolver: Resolver = resolve_host
) -> None:
    """Refuse (VALIDATION_ERROR, path ``webhook``) a target the policy does not allow.

    Refused: non-http(s) schemes, a missing host, and — unless allowed by name, address or
    ``allow_private`` — any host resolving to a non-public address (:func:`is_public_address`).
    Raises :class:`OSError` if the host cannot be resolved.
    """
    await vetted_address(url, policy, resolver)

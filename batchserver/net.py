"""Outbound HTTP to URLs that clients choose (webhooks), guarded against SSRF.

A client-supplied URL must not let the server reach what only the server can reach: its own
loopback, the private network, link-local and cloud metadata endpoints. ``check_url`` resolves
the host once and checks every address; ``post_pinned`` then connects to exactly the address
that was checked (sending the original ``Host`` header and TLS SNI, and verifying the certificate
against the original name), so a DNS answer that changes between check and connect (rebinding)
cannot redirect the request. Redirects are never followed and proxies from the environment are
ignored, for the same reason.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata endpoints (AWS, GCP, Azure, Oracle, DigitalOcean: 169.254.169.254; AWS ECS
# and EKS: 169.254.170.x; Alibaba: 100.100.100.200; AWS over IPv6: fd00:ec2::…). Refused even
# when WEBHOOK_ALLOW_PRIVATE is on: no webhook receiver ever lives there.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "100.100.100.200",
        "fd00:ec2::254",
        "fd00:ec2::23",
    )
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(ValueError):
    """The URL is not allowed: wrong scheme, or its host is (or resolves to) a refused address."""


class ResolveError(UnsafeURL):
    """The host did not resolve. Unlike a refusal this may be temporary, so it is retried."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the one address that the connection is pinned to."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host name, or the IP literal
    port: int
    ip: IPAddress


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, Teredo), if any."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo:
        return ip.teredo[1]
    return None


def refusal(ip: IPAddress, allow_private: bool = False) -> str | None:
    """Why ``ip`` is refused as a webhook destination, or None when it is allowed."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%")[0])
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = refusal(inner, allow_private)
            return f"{reason} (embedded in {ip})" if reason else None
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_loopback:  # before "reserved": ::1 lies in the reserved block ::/8
        return None if allow_private else "a loopback address"
    if ip.is_reserved:
        return "a reserved address"
    if allow_private:
        return None
    if ip.is_link_local:
        return "a link-local address"
    if ip in _UNIQUE_LOCAL:
        return "a unique-local address"
    if ip.is_private:
        return "a private address"
    if ip in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if not ip.is_global:
        return "a non-global address"
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolveError(f"host {host!r} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ResolveError(f"host {host!r} has no address")
    return addresses


def check_url(url: str, *, allow_private: bool | None = None) -> Target:
    """Parse ``url``, resolve its host and check every address; raise UnsafeURL if refused.

    All addresses must pass (a name that answers with one public and one private address is
    refused), and the first one is pinned for the connection.
    """
    if allow_private is None:
        allow_private = settings.WEBHOOK_ALLOW_PRIVATE
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise UnsafeURL(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeURL("only http and https URLs are allowed")
    if not host:
        raise UnsafeURL("the URL has no host")
    addresses = _resolve(host, port)
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason:
            shown = host if host == str(address) else f"{host} ({address})"
            raise UnsafeURL(f"{shown} is {reason}")
    return Target(url=parsed, host=host, port=port, ip=addresses[0])


def post_pinned(
    target: Target, content: bytes, headers: dict[str, str], timeout: float, keep: int = 500
) -> tuple[int, bytes]:
    """POST to the checked address of ``target`` as if to its host name: (status, body start).

    Only the first ``keep`` bytes of the answer are read, so a receiver cannot make us swallow
    a large body.
    """
    default_port = 443 if target.url.scheme == "https" else 80
    name = f"[{target.host}]" if ":" in target.host else target.host
    host_header = name if target.port == default_port else f"{name}:{target.port}"
    url = target.url.copy_with(host=str(target.ip), port=target.port)
    extensions = {}
    if target.url.scheme == "https":
        # TLS: SNI and certificate verification use the original name, not the pinned IP.
        extensions["sni_hostname"] = target.host
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout) as client:
        request = client.build_request(
            "POST",
            url,
            content=content,
            headers={**headers, "Host": host_header},
            extensions=extensions,
        )
        response = client.send(request, stream=True)
        try:
            start = b""
            for part in response.iter_bytes():
                start += part
                if len(start) >= keep:
                    break
            return response.status_code, start[:keep]
        finally:
            response.close()

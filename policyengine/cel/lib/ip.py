"""The Kubernetes IP and CIDR libraries: ``ip()``, ``cidr()`` and their methods.

Parsing follows Go's ``net/netip`` as Kubernetes uses it: IPv4 without leading zeros, no IPv6 zones and
no IPv4-mapped IPv6 addresses. A CIDR keeps its host bits (``cidr('10.0.0.1/8').ip()`` is ``10.0.0.1``);
``masked()`` clears them, and equality compares address and prefix length.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from celpy import celtypes

from policyengine.cel.lib.dispatch import STRING, Function, LibError, overload, table

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class IPAddress:
    """A CEL ``net.IP`` value."""

    __slots__ = ("addr",)

    def __init__(self, addr: Address) -> None:
        self.addr = addr

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IPAddress) and self.addr == other.addr

    def __hash__(self) -> int:
        return hash(self.addr)

    def __str__(self) -> str:
        return str(self.addr)

    def __repr__(self) -> str:
        return f"ip({str(self.addr)!r})"


class CIDR:
    """A CEL ``net.CIDR`` value: an address (host bits kept) and a prefix length."""

    __slots__ = ("addr", "bits")

    def __init__(self, addr: Address, bits: int) -> None:
        self.addr = addr
        self.bits = bits

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(f"{self.addr}/{self.bits}", strict=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CIDR) and (self.addr, self.bits) == (other.addr, other.bits)

    def __hash__(self) -> int:
        return hash((self.addr, self.bits))

    def __str__(self) -> str:
        return f"{self.addr}/{self.bits}"

    def __repr__(self) -> str:
        return f"cidr({str(self)!r})"


def parse_addr(text: str) -> Address:
    """Go's netip.ParseAddr as Kubernetes applies it; raises ValueError."""
    if "%" in text:
        raise ValueError("IPv6 zones are not allowed")
    addr = ipaddress.ip_address(text)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise ValueError("IPv4-mapped IPv6 addresses are not allowed")
    return addr


def _ip_error(text: str, err: Exception) -> LibError:
    # Kubernetes quotes the input; it may come from the request, so only the reason is kept.
    reason = "IPv4 address too long" if text.count(".") > 3 else str(err).replace(repr(text), "input")
    return LibError(f"IP Address parse error during conversion from string: ParseAddr: {reason}")


def parse_cidr(text: str) -> CIDR:
    """Go's netip.ParsePrefix as Kubernetes applies it; raises LibError."""
    prefix = "network address parse error during conversion from string: netip.ParsePrefix"
    addr_text, slash, bits_text = text.partition("/")
    if not slash:
        raise LibError(f"{prefix}: no '/'")
    if not bits_text.isdigit() or (len(bits_text) > 1 and bits_text[0] == "0"):
        raise LibError(f"{prefix}: bad bits after slash")
    try:
        addr = parse_addr(addr_text)
    except ValueError:
        raise LibError(f"{prefix}: bad address") from None
    bits = int(bits_text)
    if bits > addr.max_prefixlen:
        raise LibError(f"{prefix}: prefix length out of range")
    return CIDR(addr, bits)


@overload(STRING)
def _ip(text: str) -> IPAddress:
    try:
        return IPAddress(parse_addr(str(text)))
    except ValueError as err:
        raise _ip_error(str(text), err) from None


@overload(STRING)
def _is_ip(text: str) -> celtypes.BoolType:
    try:
        parse_addr(str(text))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


@overload(STRING)
def _is_canonical(text: str) -> celtypes.BoolType:
    return celtypes.BoolType(str(_ip(text)) == str(text))


@overload(IPAddress)
def _family(ip: IPAddress) -> celtypes.IntType:
    return celtypes.IntType(ip.addr.version)


def _predicate(test: Any) -> Function:
    @overload(IPAddress)
    def check(ip: IPAddress) -> celtypes.BoolType:
        return celtypes.BoolType(bool(test(ip.addr)))

    return check


def _link_local_multicast(addr: Address) -> bool:
    if addr.version == 4:
        return addr in ipaddress.ip_network("224.0.0.0/24")
    return (int(addr) >> 112) & 0xFF0F == 0xFF02


def _global_unicast(addr: Address) -> bool:
    if addr.version == 4 and addr == ipaddress.IPv4Address("255.255.255.255"):
        return False
    return not (addr.is_unspecified or addr.is_loopback or addr.is_multicast or addr.is_link_local)


@overload((IPAddress, CIDR))
def _string(value: Any) -> celtypes.StringType:
    return celtypes.StringType(str(value))


@overload(STRING)
def _cidr(text: str) -> CIDR:
    return parse_cidr(str(text))


@overload(CIDR, (IPAddress, STRING))
def _contains_ip(cidr: CIDR, ip: Any) -> celtypes.BoolType:
    addr = ip.addr if isinstance(ip, IPAddress) else _ip(ip).addr
    return celtypes.BoolType(addr.version == cidr.addr.version and addr in cidr.network)


@overload(CIDR, (CIDR, STRING))
def _contains_cidr(cidr: CIDR, other: Any) -> celtypes.BoolType:
    inner = other if isinstance(other, CIDR) else parse_cidr(str(other))
    if inner.addr.version != cidr.addr.version or inner.bits < cidr.bits:
        return celtypes.BoolType(False)
    return celtypes.BoolType(inner.addr in cidr.network)


@overload(CIDR)
def _cidr_ip(cidr: CIDR) -> IPAddress:
    return IPAddress(cidr.addr)


@overload(CIDR)
def _masked(cidr: CIDR) -> CIDR:
    return CIDR(cidr.network.network_address, cidr.bits)


@overload(CIDR)
def _prefix_length(cidr: CIDR) -> celtypes.IntType:
    return celtypes.IntType(cidr.bits)


def functions() -> dict[str, list[Function]]:
    return table(
        ("ip", _ip),
        ("ip", _cidr_ip),
        ("isIP", _is_ip),
        ("ip.isCanonical", _is_canonical),
        ("family", _family),
        ("isUnspecified", _predicate(lambda a: a.is_unspecified)),
        ("isLoopback", _predicate(lambda a: a.is_loopback)),
        ("isLinkLocalMulticast", _predicate(_link_local_multicast)),
        ("isLinkLocalUnicast", _predicate(lambda a: a.is_link_local and not a.is_multicast)),
        ("isGlobalUnicast", _predicate(_global_unicast)),
        ("string", _string),
        ("cidr", _cidr),
        ("containsIP", _contains_ip),
        ("containsCIDR", _contains_cidr),
        ("masked", _masked),
        ("prefixLength", _prefix_length),
    )

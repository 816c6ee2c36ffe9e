"""The Kubernetes URLs library: ``url()``, ``isURL()`` and the URL accessors.

Parsing is Go's ``url.ParseRequestURI`` (an absolute URI or an absolute path), written out here because
Python's ``urllib.parse`` accepts relative references and unescapes leniently.
"""

from __future__ import annotations

import re

from celpy import celtypes

from policyengine.cel.lib.dispatch import STRING, Function, LibError, overload, table

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_HEX = "0123456789ABCDEF"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_PATH_KEEP = _UNRESERVED | frozenset("$&+,/:;=@")
_RAW_PATH_OK = _PATH_KEEP | frozenset("!'()*[]%")


class URL:
    """A CEL ``kubernetes.URL``."""

    __slots__ = ("host", "path", "query", "raw_path", "scheme", "text")

    def __init__(self, text: str, scheme: str, host: str, path: str, raw_path: str, query: str) -> None:
        self.text, self.scheme, self.host = text, scheme, host
        self.path, self.raw_path, self.query = path, raw_path, query

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URL) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __str__(self) -> str:
        return self.text


def _unescape(text: str, query: bool) -> str:
    out = bytearray()
    i = 0
    raw = text.encode("utf-8")
    while i < len(raw):
        ch = raw[i]
        if ch == ord("%"):
            pair = raw[i + 1 : i + 3].decode("ascii", "replace").upper()
            if len(pair) != 2 or any(c not in _HEX for c in pair):
                raise LibError("invalid URL escape")
            out.append(int(pair, 16))
            i += 3
            continue
        out.append(ord(" ") if query and ch == ord("+") else ch)
        i += 1
    return out.decode("utf-8", "replace")


def _escape_path(path: str) -> str:
    out = []
    for byte in path.encode("utf-8"):
        ch = chr(byte)
        out.append(ch if ch in _PATH_KEEP else f"%{byte:02X}")
    return "".join(out)


def _valid_port(port: str) -> bool:
    return port == "" or port.isdigit()


def _check_host(host: str) -> None:
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise LibError("missing ']' in host")
        rest = host[end + 1 :]
        if rest and not (rest.startswith(":") and _valid_port(rest[1:])):
            raise LibError("invalid port after host")
        return
    colon = host.rfind(":")
    if colon >= 0 and not _valid_port(host[colon + 1 :]):
        raise LibError("invalid port after host")


def parse_url(text: str) -> URL:
    """Go's url.ParseRequestURI; raises LibError."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise LibError("URL contains a control character")
    if not text:
        raise LibError("empty url")
    scheme, rest = "", text
    match = _SCHEME.match(text)
    if match:
        scheme, rest = match.group(1).lower(), text[match.end() :]
    elif text.startswith(":"):
        raise LibError("missing protocol scheme")
    if rest.endswith("?") and rest.count("?") == 1:
        rest, query = rest[:-1], ""
    else:
        rest, _, query = rest.partition("?")
    if not rest.startswith("/"):
        if scheme:
            return URL(text, scheme, "", "", "", query)  # opaque URL, e.g. mailto:x
        raise LibError("invalid URI for request")
    host = ""
    if scheme and rest.startswith("//"):
        authority, slash, path_rest = rest[2:].partition("/")
        rest = slash + path_rest
        host = authority.rpartition("@")[2]
        _check_host(host)
        _unescape(host, False)
    path = _unescape(rest, False)
    return URL(text, scheme, host, path, rest, query)


def _url_of(text: str) -> URL:
    # Kubernetes validates with ParseRequestURI, then keeps url.Parse's result (fragment cut off).
    try:
        parsed = parse_url(text)
        return parse_url(text.partition("#")[0]) if "#" in text else parsed
    except LibError as err:
        raise LibError(f"URL parse error during conversion from string: {err}") from None


@overload(STRING)
def _url(text: str) -> URL:
    return _url_of(str(text))


@overload(STRING)
def _is_url(text: str) -> celtypes.BoolType:
    try:
        parse_url(str(text))
    except LibError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _split_host(host: str) -> tuple[str, str]:
    if host.startswith("["):
        end = host.find("]")
        return host[1:end], host[end + 2 :] if host[end + 1 : end + 2] == ":" else ""
    name, colon, port = host.rpartition(":")
    return (name, port) if colon else (host, "")


@overload(URL)
def _scheme(u: URL) -> celtypes.StringType:
    return celtypes.StringType(u.scheme)


@overload(URL)
def _host(u: URL) -> celtypes.StringType:
    return celtypes.StringType(u.host)


@overload(URL)
def _hostname(u: URL) -> celtypes.StringType:
    return celtypes.StringType(_split_host(u.host)[0])


@overload(URL)
def _port(u: URL) -> celtypes.StringType:
    return celtypes.StringType(_split_host(u.host)[1])


@overload(URL)
def _escaped_path(u: URL) -> celtypes.StringType:
    raw_ok = all(c in _RAW_PATH_OK for c in u.raw_path)
    if raw_ok and _escape_path(u.path) != u.raw_path and _unescape(u.raw_path, False) == u.path:
        return celtypes.StringType(u.raw_path)
    return celtypes.StringType(_escape_path(u.path))


@overload(URL)
def _query(u: URL) -> celtypes.MapType:
    out: dict[str, list[str]] = {}
    for part in u.query.split("&"):
        if not part or ";" in part:
            continue
        key, _, value = part.partition("=")
        try:
            key, value = _unescape(key, True), _unescape(value, True)
        except LibError:
            continue
        out.setdefault(key, []).append(value)
    return celtypes.MapType(
        {celtypes.StringType(k): celtypes.ListType(map(celtypes.StringType, v)) for k, v in out.items()}
    )


def functions() -> dict[str, list[Function]]:
    return table(
        ("url", _url),
        ("isURL", _is_url),
        ("getScheme", _scheme),
        ("getHost", _host),
        ("getHostname", _hostname),
        ("getPort", _port),
        ("getEscapedPath", _escaped_path),
        ("getQuery", _query),
    )

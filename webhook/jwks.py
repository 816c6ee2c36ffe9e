"""The API server's token keys (``--apiserver-jwks FILE|URL``) and the check of its bearer tokens.

Tokens are verified with PyJWT: signature against a key of the JWKS chosen by ``kid``, audience, issuer,
``exp`` and ``nbf`` (all required), and an algorithm allow-list of public-key algorithms whose key type
must match the key's (no ``none``, no HMAC: a public JWKS holds no shared secrets). The JWKS is read
bounded (``MAX_JWKS_BYTES``, ``MAX_KEYS``) and refreshed every ``interval`` and when a token names a key
id it does not hold, at most once per ``min_refresh``; a JWKS that fails to load keeps the last good one.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from webhook.boundedfile import read_bounded
from webhook.logs import get_logger

MAX_JWKS_BYTES = 64 * 1024  # a few dozen keys; anything larger is not a JWKS someone meant
MAX_KEYS = 32
MAX_TOKEN_BYTES = 8 * 1024  # a service-account-style token is ~1 KiB
DEFAULT_INTERVAL = 300.0  # seconds between two refreshes of the JWKS
DEFAULT_MIN_REFRESH = 10.0  # an unknown key id refreshes the JWKS at most this often
FETCH_TIMEOUT = 5.0
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
LEEWAY = 30.0  # seconds of clock skew allowed on exp and nbf
# The algorithm a token may name -> the JWK key type it must be verified with.
ALGORITHMS: dict[str, str] = {
    **{f"RS{n}": "RSA" for n in (256, 384, 512)},
    **{f"PS{n}": "RSA" for n in (256, 384, 512)},
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "EdDSA": "OKP",
}


class JwksError(Exception):
    """A JWKS that cannot be used; the message names its source."""


class TokenRefused(Exception):
    """A bearer token that does not verify; the message says why (never the token)."""


@dataclass(frozen=True)
class _Key:
    kty: str
    key: object  # the public key PyJWT verifies with


def _read(source: str) -> bytes:
    if source.startswith("http://") and urllib.parse.urlsplit(source).hostname not in LOOPBACK:
        # Keys fetched in the clear could be swapped by anyone on the path: only a local sidecar may.
        raise JwksError(f"{source}: a JWKS URL must be https:// (http:// only on the loopback address)")
    if source.startswith(("https://", "http://")):
        try:
            with urllib.request.urlopen(source, timeout=FETCH_TIMEOUT) as response:
                data: bytes = response.read(MAX_JWKS_BYTES + 1)
        except OSError as err:
            raise JwksError(f"{source}: cannot fetch: {err}") from None
        if len(data) > MAX_JWKS_BYTES:
            raise JwksError(f"{source}: larger than {MAX_JWKS_BYTES} bytes, not a JWKS")
        return data
    return read_bounded(source, MAX_JWKS_BYTES, JwksError, "a JWKS")


def parse_jwks(source: str, data: bytes) -> dict[str, _Key]:
    """The public keys of a JWKS document by key id; JwksError naming the source and the key at fault."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise JwksError(f"{source}: not JSON ({err})") from None
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not keys:
        raise JwksError(f'{source}: no "keys" list (a JWKS is {{"keys": [...]}})')
    if len(keys) > MAX_KEYS:
        raise JwksError(f"{source}: {len(keys)} keys, more than {MAX_KEYS}")
    out: dict[str, _Key] = {}
    for i, raw in enumerate(keys):
        where = f"{source}: keys[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("kid"), str) or not raw["kid"]:
            raise JwksError(f'{where}: not a key with a "kid"')
        kty = raw.get("kty")
        if kty not in set(ALGORITHMS.values()):
            raise JwksError(f"{where}: key type {kty!r} is not a public-key type (RSA, EC, OKP)")
        if any(field in raw for field in ("d", "p", "q", "k")):
            raise JwksError(f"{where}: holds private or secret key material")
        try:
            key = jwt.PyJWK(raw).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as err:
            raise JwksError(f"{where}: not a usable {kty} key ({err})") from None
        out[raw["kid"]] = _Key(kty, key)
    return out


class TokenVerifier:
    """Checks ``Authorization: Bearer`` tokens against the JWKS at ``source``."""

    def __init__(
        self,
        source: str,
        *,
        audience: str,
        issuer: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        min_refresh: float = DEFAULT_MIN_REFRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source, self.audience, self.issuer = source, audience, issuer
        self.interval, self.min_refresh, self.clock = interval, min_refresh, clock
        self._lock = threading.Lock()
        self.keys = parse_jwks(source, _read(source))  # a bad JWKS at start fails the start
        self._loaded = self._tried = clock()
        self.refreshes = 0
        self.last_error: str | None = None

    def refresh(self, *, forced: bool = False) -> None:
        """Load the JWKS again when ``interval`` has passed (or, ``forced``, ``min_refresh``)."""
        with self._lock:
            now = self.clock()
            if now - self._tried < (self.min_refresh if forced else self.interval):
                return
            self._tried = now
        try:
            keys = parse_jwks(self.source, _read(self.source))
        except JwksError as err:
            self.last_error = str(err)
            get_logger().error("JWKS not refreshed: keeping the previous keys", extra={"error": str(err)})
            return
        self.keys, self._loaded, self.last_error = keys, now, None
        self.refreshes += 1

    def verify(self, token: str) -> dict[str, object]:
        """The token's claims; TokenRefused saying why. May block (a refresh): call it off the loop."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRefused(f"token longer than {MAX_TOKEN_BYTES} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise TokenRefused(f"malformed token ({err})") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise TokenRefused(f"algorithm {alg!r} is not allowed")
        if not isinstance(kid, str):
            raise TokenRefused("the token names no key id (kid)")
        self.refresh()
        key = self.keys.get(kid)
        if key is None:
            self.refresh(forced=True)  # a rotated key: fetched at most once per min_refresh
            key = self.keys.get(kid)
        if key is None:
            raise TokenRefused(f"unknown key id {kid[:64]!r}")
        if ALGORITHMS[alg] != key.kty:
            raise TokenRefused(f"algorithm {alg} does not fit the {key.kty} key {kid[:64]!r}")
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                key.key,  # type: ignore[arg-type]
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "nbf", "aud"] + (["iss"] if self.issuer else [])},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as err:  # the latter: a malformed part of the token
            raise TokenRefused(f"{type(err).__name__}: {err}") from None
        return claims

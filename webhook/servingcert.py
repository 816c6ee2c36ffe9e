"""The serving certificate of a listener in one process: loaded from ``--tls-cert``/``--tls-key``,
reloaded when those files change, and reported (``/readyz`` detail, the expiry gauge, a warning in the
logs while fewer than ``WARN_DAYS`` days remain).

A renewed certificate arrives as new file contents: cert-manager or ``kubectl apply`` update a mounted
Secret by swapping the volume's ``..data`` symlink, a hand-made rotation rewrites the files. The files
are polled (``os.stat`` follows the symlinks, so the resolved path, its inode, size and mtime change) and
a change is acted on once it has stayed the same for one poll, so the two writes of a hand-made rotation
are read together. The new pair is checked whole (the certificate parses, the key parses and belongs to
it, OpenSSL loads both) into a new ``SSLContext``; only then is it handed to the listener, for new
handshakes. Established connections keep the context they were made with. A pair that fails the check
never replaces the working one: it is logged naming the file, counted, and tried again on the next change.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization

from webhook.boundedfile import read_bounded
from webhook.logs import get_logger

DEFAULT_INTERVAL = 10.0  # seconds between two polls of the files
MAX_PEM_BYTES = 1024 * 1024  # a certificate chain or a key; anything larger is not one
WARN_DAYS = 30  # warn while fewer days than this remain before notAfter
WARN_EVERY = 3600.0  # seconds between two warnings about the same certificate
MAX_NAMES_SHOWN = 20  # subjectAltNames reported in /readyz

ContextFactory = Callable[[str, str], ssl.SSLContext]
MAX_CA_CERTIFICATES = 100  # a client CA bundle: more than this is not a bundle someone meant
# (resolved path, inode, size, mtime) of each file, or the error that stat met.
Stamp = tuple[tuple[str, int, int, int] | str, ...]


class CertificateError(Exception):
    """A certificate/key pair that cannot be served; the message names the file."""


class _Changing(Exception):
    """The files changed while they were being read: read them again at the next poll."""


@dataclass(frozen=True)
class Loaded:
    """A pair that passed the checks, with the context that serves it."""

    context: ssl.SSLContext
    digest: str  # SHA-256 of both files' bytes: the same bytes are not loaded twice
    not_after: datetime
    subject: str
    names: tuple[str, ...]
    serial: str  # hexadecimal
    sha256: str  # fingerprint of the leaf certificate (DER)
    loaded_at: datetime

    def seconds_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds()


def tls_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """The serving context; with ``client_ca`` a client certificate is asked for and, when one is
    presented, must chain to it (else the handshake fails). It stays optional at the TLS layer because
    kubelet probes present none: ``webhook.clientauth`` refuses /validate without a verified one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cafile=client_ca)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _read(path: str) -> bytes:
    """A PEM file's bytes, bounded by MAX_PEM_BYTES."""
    return read_bounded(path, MAX_PEM_BYTES, CertificateError, "a PEM certificate or key")


def _names(leaf: x509.Certificate) -> tuple[str, ...]:
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    found = [str(n) for n in sans.get_values_for_type(x509.DNSName)]
    found += [str(n) for n in sans.get_values_for_type(x509.IPAddress)]
    return tuple(found)


def check_client_ca(path: str) -> bytes:
    """The bytes of a client CA bundle that parses as 1..MAX_CA_CERTIFICATES PEM CA certificates."""
    data = _read(path)
    try:
        cas = x509.load_pem_x509_certificates(data)
    except ValueError as err:
        raise CertificateError(f"{path}: not a PEM certificate bundle ({err})") from None
    if len(cas) > MAX_CA_CERTIFICATES:
        raise CertificateError(f"{path}: {len(cas)} certificates, more than {MAX_CA_CERTIFICATES}")
    return data


def load_pair(cert: str, key: str, make_context: ContextFactory, client_ca: str | None = None) -> Loaded:
    """Check the pair in ``cert`` and ``key`` (and the client CA bundle, when clients must present a
    certificate) and build its context. Raises CertificateError naming the file at fault, or _Changing
    when the files were rewritten while being read."""
    cert_pem, key_pem = _read(cert), _read(key)
    ca_pem = check_client_ca(client_ca) if client_ca else b""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as err:
        raise CertificateError(f"{cert}: not a PEM certificate ({err})") from None
    leaf = chain[0]
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        # TypeError: the key is encrypted; OpenSSL would ask for a passphrase on the terminal.
        raise CertificateError(f"{key}: not an unencrypted PEM private key ({err})") from None
    ours = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if ours != theirs:
        raise CertificateError(f"{key}: the key does not belong to the certificate in {cert}")
    try:
        context = make_context(cert, key)
    except (ssl.SSLError, OSError, ValueError) as err:
        raise CertificateError(f"{cert}, {key}: OpenSSL refused the pair ({err})") from None
    # OpenSSL read the files again: they must still hold the bytes checked above.
    if _read(cert) != cert_pem or _read(key) != key_pem or (client_ca and _read(client_ca) != ca_pem):
        raise _Changing()
    return Loaded(
        context=context,
        digest=hashlib.sha256(cert_pem + b"\0" + key_pem + b"\0" + ca_pem).hexdigest(),
        not_after=leaf.not_valid_after_utc,
        subject=leaf.subject.rfc4514_string(),
        names=_names(leaf),
        serial=format(leaf.serial_number, "x"),
        sha256=leaf.fingerprint(hashes.SHA256()).hex(),
        loaded_at=datetime.now(UTC),
    )


def _stamp(paths: Iterable[str]) -> Stamp:
    out: list[tuple[str, int, int, int] | str] = []
    for path in paths:
        try:
            st = os.stat(path)  # follows the ..data symlink of a Secret volume
            out.append((os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError as err:
            out.append(f"{path}: {err.strerror}")
    return tuple(out)


class ServingCertificate:
    """The pair one listener serves in this process, and the poll that replaces it when its files change.

    ``on_load`` is given each new context (the first one too is ``current.context``)."""

    def __init__(
        self,
        cert: str,
        key: str,
        *,
        server: str,
        make_context: ContextFactory,
        interval: float | None = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        client_ca: str | None = None,
    ) -> None:
        self.cert, self.key, self.server = cert, key, server
        self.client_ca = client_ca  # reloaded with the pair: its change makes a new context too
        self.make_context = make_context
        self.interval = interval or None
        self.clock = clock
        self.on_load: Callable[[ssl.SSLContext], None] = lambda _: None
        self.reloads = 0
        self.failures = 0
        self.last_error: str | None = None
        self._seen = _stamp(self._files())
        self._pending: Stamp | None = None
        self._warned: float | None = None
        self.current = self._load()  # a bad pair at start fails the start
        self.check_expiry()

    def _files(self) -> tuple[str, ...]:
        return (self.cert, self.key, self.client_ca) if self.client_ca else (self.cert, self.key)

    def _load(self) -> Loaded:
        return load_pair(self.cert, self.key, self.make_context, self.client_ca)

    def poll(self) -> None:
        """Look at the files once: a change that has held since the last poll is loaded."""
        stamp = _stamp(self._files())
        if stamp == self._seen:
            self._pending = None
            return
        if stamp != self._pending:
            self._pending = stamp  # still being written, perhaps: wait one poll
            return
        self._pending = None
        try:
            loaded = self._load()
        except _Changing:
            return  # _seen is kept: the next poll sees the change again
        except CertificateError as err:
            self._seen = stamp  # tried again when the files change again
            self._failed(str(err))
            return
        self._seen = stamp
        if loaded.digest != self.current.digest:
            self._apply(loaded)
        self.last_error = None

    def _apply(self, loaded: Loaded) -> None:
        previous = self.current
        self.current = loaded
        self.reloads += 1
        self.on_load(loaded.context)
        get_logger().info(
            "serving certificate reloaded",
            extra={
                "server": self.server,
                "cert": self.cert,
                "serial": loaded.serial,
                "previousSerial": previous.serial,
                "notAfter": loaded.not_after.isoformat(),
            },
        )
        self._warned = None  # a new certificate is judged afresh
        self.check_expiry()

    def _failed(self, reason: str) -> None:
        self.failures += 1
        self.last_error = reason
        get_logger().error(
            "serving certificate not reloaded: still serving the previous one",
            extra={"server": self.server, "error": reason, "serial": self.current.serial},
        )

    def check_expiry(self, now: datetime | None = None) -> None:
        """Warn while fewer than WARN_DAYS days remain, at most once per WARN_EVERY."""
        left = self.current.seconds_left(now or datetime.now(UTC))
        if left >= WARN_DAYS * 86400:
            return
        tick = self.clock()
        if self._warned is not None and tick - self._warned < WARN_EVERY:
            return
        self._warned = tick
        get_logger().warning(
            "serving certificate expires soon" if left > 0 else "serving certificate has expired",
            extra={
                "server": self.server,
                "cert": self.cert,
                "notAfter": self.current.not_after.isoformat(),
                "daysLeft": round(left / 86400, 1),
            },
        )

    async def watch(self) -> None:
        """Poll until cancelled (with the event loop); without an interval only the expiry is checked."""
        while True:
            await asyncio.sleep(self.interval or WARN_EVERY)
            try:
                if self.interval:
                    self.poll()
                self.check_expiry()
            except Exception:  # a surprise must not end the watch: the pair in use stays
                get_logger().exception("serving certificate poll failed", extra={"server": self.server})

    def status(self, now: datetime | None = None) -> dict[str, object]:
        """``/readyz`` detail."""
        c = self.current
        return {
            "notAfter": c.not_after.isoformat().replace("+00:00", "Z"),
            "secondsLeft": int(c.seconds_left(now or datetime.now(UTC))),
            "subject": c.subject,
            "names": list(c.names[:MAX_NAMES_SHOWN]),
            "serial": c.serial,
            "sha256": c.sha256,
            "loadedAt": c.loaded_at.isoformat().replace("+00:00", "Z"),
            "reloads": self.reloads,
            "reloadFailures": self.failures,
            "lastError": self.last_error,
        }


# The listeners of this process by name ("webhook", "audit-api"); each worker process has its own.
_served: weakref.WeakValueDictionary[str, ServingCertificate] = weakref.WeakValueDictionary()


def register(certificate: ServingCertificate) -> None:
    _served[certificate.server] = certificate


def served(server: str = "webhook") -> ServingCertificate | None:
    return _served.get(server)


def serving(
    cert: str,
    key: str,
    *,
    server: str,
    make_context: ContextFactory,
    interval: float | None,
    serve: Callable[[ssl.SSLContext], None],
    client_ca: str | None = None,
) -> ServingCertificate:
    """Load the pair (raises CertificateError), hand its context to ``serve``, register it for /readyz
    and the gauges, and poll its files on the running event loop (uvicorn loads its config there; the
    task ends with that loop). ``serve`` is given every context that replaces it."""
    certificate = ServingCertificate(
        cert, key, server=server, make_context=make_context, interval=interval, client_ca=client_ca
    )
    serve(certificate.current.context)
    certificate.on_load = serve
    register(certificate)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # loaded outside a server (a test building a config): nothing to serve yet
        return certificate
    task = loop.create_task(certificate.watch(), name=f"tls-watch-{server}")
    _watches.add(task)
    task.add_done_callback(_watches.discard)
    return certificate


_watches: set[asyncio.Task[None]] = set()  # the loop keeps weak references to its tasks only


def certificate_status(server: str = "webhook") -> dict[str, object] | None:
    """The ``/readyz`` detail of the certificate ``server`` serves, None over plain HTTP."""
    certificate = served(server)
    return certificate.status() if certificate is not None else None


def certificate_gauges(
    server: str = "webhook",
) -> dict[str, Callable[[], list[tuple[float, Mapping[str, str]]]]]:
    """The gauge sources for /metrics: seconds until notAfter, and the reloads refused since start."""

    def expiry() -> list[tuple[float, Mapping[str, str]]]:
        certificate = served(server)
        return [(certificate.current.seconds_left(datetime.now(UTC)), {})] if certificate else []

    def failures() -> list[tuple[float, Mapping[str, str]]]:
        certificate = served(server)
        return [(float(certificate.failures), {})] if certificate else []

    return {
        "policyengine_tls_certificate_expiry_seconds": expiry,
        "policyengine_tls_certificate_reload_failures": failures,
    }

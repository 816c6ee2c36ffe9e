"""Key files of the log: ``audit.key`` (PKCS#8 PEM, 0600), ``audit.pub`` (PEM) and ``audit.vkey``.

The key name of a log's checkpoint key is its origin; PEM files carry no name, so loaders take the
origin, or read it from the ``audit.vkey`` beside the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from audit import errors
from audit.errors import KeyFileError, NoteError
from audit.note import Ed25519Signer, Verifier, check_name

KEY_FILE = "audit.key"
PUB_FILE = "audit.pub"
VKEY_FILE = "audit.vkey"


@dataclass(frozen=True)
class KeyFiles:
    key: Path
    pub: Path
    vkey: Path


def keygen(origin: str, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> KeyFiles:
    """Create a new Ed25519 checkpoint key for ``origin`` in ``out_dir``; never overwrites by default."""
    check_name(origin)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = KeyFiles(out / KEY_FILE, out / PUB_FILE, out / VKEY_FILE)
    if not overwrite and any(p.exists() for p in (files.key, files.pub, files.vkey)):
        raise KeyFileError(f"key files already exist in {out}", code=errors.KEY_EXISTS)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    if overwrite:
        files.key.unlink(missing_ok=True)
    fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(files.key, 0o600)  # whatever the umask said
    public = private.public_key()
    files.pub.write_bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    files.vkey.write_text(Verifier(origin, public).vkey() + "\n")
    return files


def _origin_beside(path: Path) -> str:
    vkey = path.with_name(VKEY_FILE)
    if not vkey.is_file():
        raise KeyFileError(f"no origin given and no {VKEY_FILE} beside {path}", code=errors.KEY_ORIGIN)
    return Verifier.from_vkey(vkey.read_text()).name


def load_signer(path: str | os.PathLike[str], origin: str | None = None) -> Ed25519Signer:
    key_path = Path(path)
    try:
        private = load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot read private key {key_path}: {exc}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"{key_path} is not an Ed25519 key")
    return Ed25519Signer(origin or _origin_beside(key_path), private)


def load_verifier(path: str | os.PathLike[str], origin: str | None = None) -> Verifier:
    """A verifier from a ``.vkey`` text or a PEM public key (which then needs ``origin``)."""
    key_path = Path(path)
    try:
        data = key_path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read public key {key_path}: {exc}") from exc
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            public = load_pem_public_key(data)
        except ValueError as exc:
            raise KeyFileError(f"cannot read public key {key_path}: {exc}") from exc
        if not isinstance(public, Ed25519PublicKey):
            raise KeyFileError(f"{key_path} is not an Ed25519 public key")
        if origin is None:
            raise KeyFileError(f"{key_path} is a PEM key: the log origin is needed", code=errors.KEY_ORIGIN)
        return Verifier(origin, public)
    try:
        verifier = Verifier.from_vkey(data.decode("utf-8", "replace"))
    except NoteError as exc:
        raise KeyFileError(f"{key_path}: {exc.message}") from exc
    if origin is not None and verifier.name != origin:
        raise KeyFileError(
            f"{key_path} is the key of {verifier.name!r}, not {origin!r}", code=errors.KEY_ORIGIN
        )
    return verifier


def public_pem(verifier: Verifier) -> bytes:
    return verifier.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

"""Kyverno's ``x509.decode(pem)`` (kyverno/sdk ``extensions/cel/libs/x509``): an RSA certificate or
certificate request as the map Go's ``encoding/json`` makes of Kyverno's ``CertificateOutput``. Input is at
most ``MAX_PEM`` characters. The decoding (``kyverno_x509_decode``) is imported at the first call: the
X.509 half of ``cryptography`` costs every command's start-up a fiftieth of a second, and few policies
decode certificates.
"""

from __future__ import annotations

from typing import Any

from policyengine.cel.lib.dispatch import STRING, Function, LibError, overload, table

MAX_PEM = 64 * 1024


@overload(STRING)
def _decode(text: str) -> Any:
    if len(text) > MAX_PEM:
        raise LibError(f"x509.decode: input of {len(text)} characters is over the limit of {MAX_PEM}")
    from policyengine.cel.lib.kyverno_x509_decode import decode

    return decode(text)


def functions() -> dict[str, list[Function]]:
    return table(("x509.decode", _decode))


__all__ = ["MAX_PEM", "functions"]

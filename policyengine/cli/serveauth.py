"""``serve``'s client authentication: who may post reviews to /validate (``webhook.clientauth``). The API
server presents a client certificate (``--client-ca``, ``--client-cn``) or a bearer token signed by a key
of ``--apiserver-jwks``; either one passing is enough. Without these flags anyone who can connect may."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from policyengine.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--client-ca",
        metavar="FILE",
        help="CA bundle (PEM) the API server's client certificate must chain to; reloaded with the "
        "serving certificate. /healthz, /readyz and /metrics stay open",
    )
    p.add_argument(
        "--client-cn",
        action="append",
        default=[],
        metavar="NAME",
        help="with --client-ca: a name (subject CN or subjectAltName) the client certificate may carry, "
        "e.g. kube-apiserver or apiserver-webhook-client (repeatable; default: any the CA signed)",
    )
    p.add_argument(
        "--apiserver-jwks",
        metavar="FILE|URL",
        help="JWKS whose keys sign the API server's bearer tokens; refreshed every 5 minutes and when a "
        "token names an unknown key (at most every 10 s)",
    )
    p.add_argument("--apiserver-audience", metavar="AUD", help="with --apiserver-jwks: the token's audience")
    p.add_argument("--apiserver-issuer", metavar="ISS", help="with --apiserver-jwks: the token's issuer")


def check(args: argparse.Namespace) -> None:
    """The flags go together and their files can be used (a bad file is a usage error naming it)."""
    if args.client_cn and not args.client_ca:
        raise UsageError("--client-cn needs --client-ca")
    if args.client_ca:
        if args.insecure_http:
            raise UsageError("--client-ca needs TLS (not --insecure-http)")
        if not Path(args.client_ca).is_file():
            raise UsageError(f"no such file: {args.client_ca}")
        from webhook.servingcert import CertificateError, check_client_ca

        try:
            check_client_ca(args.client_ca)
        except CertificateError as err:
            raise UsageError(str(err)) from None
    if (args.apiserver_audience or args.apiserver_issuer) and not args.apiserver_jwks:
        raise UsageError("--apiserver-audience and --apiserver-issuer need --apiserver-jwks")
    if args.apiserver_jwks:
        if not args.apiserver_audience:
            raise UsageError("--apiserver-jwks needs --apiserver-audience")
        from webhook.jwks import JwksError, TokenVerifier

        try:
            TokenVerifier(args.apiserver_jwks, audience=args.apiserver_audience)
        except JwksError as err:
            raise UsageError(str(err)) from None


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "client_ca": args.client_ca,
        "client_cns": tuple(args.client_cn),
        "apiserver_jwks": args.apiserver_jwks,
        "apiserver_audience": args.apiserver_audience,
        "apiserver_issuer": args.apiserver_issuer,
    }

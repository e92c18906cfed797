"""Tokens for the auth tests: good ones from PyJWT, and forged ones built by hand.

The forgeries are what an attacker would send and PyJWT refuses to make:
an unsigned `alg: none` token, and an HS256 token whose HMAC key is the
server's RSA *public* key (the HS/RS algorithm confusion attack).
"""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SECRET = b"a-test-secret-that-is-long-enough-for-hs256!"
ISSUER = "turingcore-tests"
AUDIENCE = "turingcore-api-tests"


def claims_for(tenant: str | None, **changes: Any) -> dict[str, Any]:
    """Valid claims for `tenant` (an hour to live); `changes` override or, as None, drop."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        "tenantId": tenant,
    }
    for key, value in changes.items():
        claims[key] = value
    return {key: value for key, value in claims.items() if value is not None}


def _segment(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    """An `alg: none` token: header and claims, empty signature."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."


def hmac_token(claims: dict[str, Any], key: bytes, algorithm: str = "HS256") -> str:
    """An HS256/HS512 token signed with any bytes as the key.

    PyJWT refuses PEM keys for HMAC and warns about short ones; an attacker does neither.
    """
    signing_input = f"{_segment({'alg': algorithm, 'typ': 'JWT'})}.{_segment(claims)}"
    hash_function = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[algorithm]
    digest = hmac.new(key, signing_input.encode(), hash_function).digest()
    signature = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return f"{signing_input}.{signature}"


def rsa_key_pair() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a fresh 2048-bit RSA key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem

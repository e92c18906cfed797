"""Bearer JWTs for the service: who the caller is, as a tenant.

A caller presents `Authorization: Bearer <jwt>`. The token is accepted only
when it is signed with the one pinned algorithm (HS256 with a shared secret
by default, or RS256 checked against a public key), carries `iss`, `aud` and
`exp` (all required and checked) and a string claim `tenantId`. The algorithm
is pinned by the server, never taken from the token's header, which shuts
out `alg: none` and the HS/RS confusion (an HS256 token "signed" with the
public key). PyJWT does the cryptography and the claim checks.

The tenant a request acts for is the token's `tenantId`; the service compares
it with the path tenant (a mismatch is a 404, see `turingcore.service`).
Tokens are minted here too (`issue_token`), for `turingcore token`, the
local stack and the tests.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

Algorithm = Literal["HS256", "RS256"]

#: Environment variable holding the HS256 secret when no file is given.
SECRET_ENV = "TURINGCORE_JWT_SECRET"
#: Shortest HS256 secret accepted (RFC 7518 3.2: a key at least as long as the hash).
MIN_SECRET_BYTES = 32
DEFAULT_ISSUER = "turingcore"
DEFAULT_AUDIENCE = "turingcore-api"
TENANT_CLAIM = "tenantId"


class AuthError(Exception):
    """A request that is not authenticated (the API's 401).

    `code` is the RFC 6750 error code for `WWW-Authenticate` (None when no
    credentials were presented at all).
    """

    def __init__(self, message: str, code: str | None = "invalid_token") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def challenge(self, realm: str = "turingcore") -> str:
        """The `WWW-Authenticate` header value for this refusal."""
        if self.code is None:
            return f'Bearer realm="{realm}"'
        description = self.message.replace('"', "'")
        return f'Bearer realm="{realm}", error="{self.code}", error_description="{description}"'


class ConfigError(ValueError):
    """An unusable auth setting (missing or short secret, unreadable key file)."""


@dataclass(frozen=True)
class AuthConfig:
    """How tokens are checked: the pinned algorithm, its key, and the expected claims.

    `key` is the HS256 shared secret, or the RS256 public key (PEM).
    """

    key: bytes
    issuer: str = DEFAULT_ISSUER
    audience: str = DEFAULT_AUDIENCE
    algorithm: Algorithm = "HS256"
    leeway_seconds: int = 0

    def __post_init__(self) -> None:
        if self.algorithm == "HS256" and len(self.key) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"the JWT secret is {len(self.key)} bytes; at least {MIN_SECRET_BYTES} are needed"
            )
        if not self.issuer or not self.audience:
            raise ConfigError("the JWT issuer and audience must not be empty")


def read_secret(secret_file: Path | None, environ: dict[str, str] | None = None) -> bytes:
    """The HS256 secret from `secret_file`, else from `TURINGCORE_JWT_SECRET`.

    Surrounding whitespace (a trailing newline) is not part of the secret.

    Raises:
        ConfigError: neither is given, the file cannot be read, or it is empty.
    """
    environ = os.environ if environ is None else environ
    if secret_file is not None:
        try:
            secret = secret_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the JWT secret file {secret_file}: {exc}") from None
        if not secret:
            raise ConfigError(f"the JWT secret file {secret_file} is empty")
        return secret
    secret_text = environ.get(SECRET_ENV, "").strip()
    if not secret_text:
        raise ConfigError(
            f"no JWT secret: pass --jwt-secret-file FILE or set {SECRET_ENV} "
            "(the service refuses to run without authentication)"
        )
    return secret_text.encode()


def read_key_file(path: Path, what: str) -> bytes:
    """A PEM key file's bytes.

    Raises:
        ConfigError: the file cannot be read or holds no PEM block.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc}") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"the {what} file {path} is not a PEM key")
    return data


class TokenVerifier:
    """Checks bearer tokens against one `AuthConfig` and names the caller's tenant."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        key: object = config.key
        if config.algorithm == "RS256":
            key = _rsa_public_key(config.key)
        self._key = key
        self._options = {"require": ["exp", "iss", "aud"]}

    def tenant_of(self, authorization: str | None) -> str:
        """The `tenantId` of a valid bearer token in an `Authorization` header value.

        Raises:
            AuthError: no bearer token, or a token that fails any check.
        """
        if not authorization:
            raise AuthError("an Authorization: Bearer token is required", code=None)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("the Authorization header must be 'Bearer <token>'", "invalid_request")
        config = self.config
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[config.algorithm],
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_seconds,
                options=self._options,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"the token is not valid: {exc}") from None
        tenant = claims.get(TENANT_CLAIM)
        if not isinstance(tenant, str) or not tenant:
            raise AuthError(f"the token has no {TENANT_CLAIM} claim (a non-empty string)")
        return tenant


def _rsa_public_key(pem: bytes) -> RSAPublicKey:
    """The RSA public key of a PEM block, loaded once (not on every request)."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the RS256 public key is not usable: {exc}") from None
    if not isinstance(key, RSAPublicKey):
        raise ConfigError("the RS256 public key is not an RSA key")
    return key


def issue_token(
    tenant_id: str,
    key: bytes,
    *,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    ttl_seconds: int = 3600,
    algorithm: Algorithm = "HS256",
    now: float | None = None,
) -> str:
    """A signed token for `tenant_id` (HS256 with a secret, or RS256 with a private key PEM).

    `now` (epoch seconds) defaults to the wall clock: tokens are about real
    time, never simulated time.
    """
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    if algorithm == "HS256" and len(key) < MIN_SECRET_BYTES:
        raise ConfigError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes")
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": f"tenant:{tenant_id}",
        "iat": issued,
        "exp": issued + ttl_seconds,
        TENANT_CLAIM: tenant_id,
    }
    return jwt.encode(claims, key, algorithm=algorithm)

"""Bearer JWTs: the pinned algorithm, required claims, the tenant claim, `turingcore token`."""

import time
from pathlib import Path

import jwt
import pytest
from token_builders import (
    AUDIENCE,
    ISSUER,
    SECRET,
    claims_for,
    hmac_token,
    rsa_key_pair,
    unsigned_token,
)
from typer.testing import CliRunner

from turingcore.auth import (
    SECRET_ENV,
    AuthConfig,
    AuthError,
    ConfigError,
    TokenVerifier,
    issue_token,
    read_key_file,
    read_secret,
)
from turingcore.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[bytes, bytes]:
    """(private PEM, public PEM), made once for the module."""
    return rsa_key_pair()


@pytest.fixture
def hs256() -> TokenVerifier:
    """A verifier pinned to HS256 with the tests' secret, issuer and audience."""
    return TokenVerifier(AuthConfig(SECRET, ISSUER, AUDIENCE))


@pytest.fixture
def rs256(rsa_keys: tuple[bytes, bytes]) -> TokenVerifier:
    """A verifier pinned to RS256 with the tests' public key."""
    return TokenVerifier(AuthConfig(rsa_keys[1], ISSUER, AUDIENCE, algorithm="RS256"))


def bearer(token: str) -> str:
    return f"Bearer {token}"


# --------------------------------------------------------------------------- good tokens


def test_a_valid_hs256_token_names_its_tenant(hs256: TokenVerifier) -> None:
    """A token signed with the secret, with iss/aud/exp right, yields its tenantId claim."""
    token = jwt.encode(claims_for("cu-a"), SECRET, algorithm="HS256")
    assert hs256.tenant_of(bearer(token)) == "cu-a"
    assert hs256.tenant_of(f"bearer   {token}") == "cu-a"


def test_a_valid_rs256_token_names_its_tenant(
    rs256: TokenVerifier, rsa_keys: tuple[bytes, bytes]
) -> None:
    """A token signed with the private key verifies against the public key."""
    token = jwt.encode(claims_for("cu-b"), rsa_keys[0], algorithm="RS256")
    assert rs256.tenant_of(bearer(token)) == "cu-b"


def test_issue_token_round_trips_with_a_lifetime(hs256: TokenVerifier) -> None:
    """issue_token sets iss, aud, exp = now + ttl and the tenant; the verifier accepts it."""
    now = time.time()
    token = issue_token("cu-a", SECRET, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=120)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["tenantId"] == "cu-a"
    assert claims["iss"] == ISSUER
    assert now + 118 <= claims["exp"] <= now + 122
    assert hs256.tenant_of(bearer(token)) == "cu-a"


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, None),
        ("", None),
        ("Bearer", "invalid_request"),
        ("Bearer   ", "invalid_request"),
        ("Basic dXNlcjpwYXNz", "invalid_request"),
        ("Bearer not-a-jwt", "invalid_token"),
        ("Bearer a.b.c", "invalid_token"),
    ],
)
def test_missing_or_garbage_credentials_are_refused(
    hs256: TokenVerifier, header: str | None, code: str | None
) -> None:
    """No header, another scheme, or bytes that are not a JWT: AuthError with the RFC 6750 code."""
    with pytest.raises(AuthError) as caught:
        hs256.tenant_of(header)
    assert caught.value.code == code
    challenge = caught.value.challenge()
    assert challenge.startswith('Bearer realm="turingcore"')
    assert (f'error="{code}"' in challenge) if code else ("error=" not in challenge)


@pytest.mark.parametrize(
    ("claims", "mentions"),
    [
        (claims_for("cu-a", iss="someone-else"), "issuer"),
        (claims_for("cu-a", aud="another-api"), "audience"),
        (claims_for("cu-a", exp=int(time.time()) - 10), "expired"),
        (claims_for("cu-a", exp=None), "exp"),
        (claims_for("cu-a", iss=None), "iss"),
        (claims_for("cu-a", aud=None), "aud"),
        (claims_for(None), "tenantId"),
        (claims_for("cu-a", tenantId=7), "tenantId"),
        (claims_for("cu-a", tenantId=""), "tenantId"),
        (claims_for("cu-a", tenantId=["cu-a"]), "tenantId"),
    ],
    ids=[
        "wrong-iss",
        "wrong-aud",
        "expired",
        "no-exp",
        "no-iss",
        "no-aud",
        "no-tenant",
        "tenant-int",
        "tenant-empty",
        "tenant-list",
    ],
)
def test_tokens_with_wrong_or_missing_claims_are_refused(
    hs256: TokenVerifier, claims: dict, mentions: str
) -> None:
    """iss, aud and exp are required and checked; tenantId must be a non-empty string."""
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(AuthError) as caught:
        hs256.tenant_of(bearer(token))
    assert mentions.lower() in caught.value.message.lower()
    assert caught.value.code == "invalid_token"


def test_a_token_signed_with_another_secret_is_refused(hs256: TokenVerifier) -> None:
    """Right claims, wrong key: the signature check fails."""
    token = jwt.encode(claims_for("cu-a"), b"x" * 40, algorithm="HS256")
    with pytest.raises(AuthError, match="Signature"):
        hs256.tenant_of(bearer(token))


def test_a_tampered_tenant_claim_breaks_the_signature(hs256: TokenVerifier) -> None:
    """Swapping the claims segment of a good token for cu-b's is caught."""
    good = jwt.encode(claims_for("cu-a"), SECRET, algorithm="HS256")
    forged_claims = unsigned_token(claims_for("cu-b")).split(".")[1]
    head, _, signature = good.split(".")
    with pytest.raises(AuthError):
        hs256.tenant_of(bearer(f"{head}.{forged_claims}.{signature}"))


def test_alg_none_is_refused_by_both_verifiers(hs256: TokenVerifier, rs256: TokenVerifier) -> None:
    """An unsigned token is never accepted, whatever the server's pinned algorithm."""
    token = unsigned_token(claims_for("cu-a"))
    for verifier in (hs256, rs256):
        with pytest.raises(AuthError, match="not allowed|not valid"):
            verifier.tenant_of(bearer(token))


def test_hs256_signed_with_the_public_key_is_refused_by_an_rs256_server(
    rs256: TokenVerifier, rsa_keys: tuple[bytes, bytes]
) -> None:
    """The algorithm confusion attack: HMAC keyed with the public PEM. RS256 is pinned."""
    token = hmac_token(claims_for("cu-a"), rsa_keys[1])
    with pytest.raises(AuthError, match="not allowed"):
        rs256.tenant_of(bearer(token))


def test_rs256_tokens_are_refused_by_an_hs256_server(
    hs256: TokenVerifier, rsa_keys: tuple[bytes, bytes]
) -> None:
    """A validly RS256-signed token is not accepted where HS256 is pinned."""
    token = jwt.encode(claims_for("cu-a"), rsa_keys[0], algorithm="RS256")
    with pytest.raises(AuthError, match="not allowed"):
        hs256.tenant_of(bearer(token))


def test_other_hmac_algorithms_are_refused(hs256: TokenVerifier) -> None:
    """HS512 with the right secret is still refused: exactly one algorithm is pinned."""
    token = hmac_token(claims_for("cu-a"), SECRET, "HS512")
    with pytest.raises(AuthError, match="not allowed"):
        hs256.tenant_of(bearer(token))


# --------------------------------------------------------------------------- configuration


def test_short_secrets_and_empty_claims_are_configuration_errors() -> None:
    """A secret under 32 bytes, or an empty issuer/audience, cannot configure a verifier."""
    with pytest.raises(ConfigError, match="at least 32"):
        AuthConfig(b"short")
    with pytest.raises(ConfigError, match="issuer and audience"):
        AuthConfig(SECRET, issuer="")
    with pytest.raises(ConfigError, match="at least 32"):
        issue_token("cu-a", b"short")


def test_read_secret_prefers_the_file_then_the_environment(tmp_path: Path) -> None:
    """The file's bytes (stripped) win; else TURINGCORE_JWT_SECRET; else a ConfigError."""
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    assert read_secret(secret_file, {SECRET_ENV: "ignored"}) == SECRET
    assert read_secret(None, {SECRET_ENV: " from-env "}) == b"from-env"
    with pytest.raises(ConfigError, match=SECRET_ENV):
        read_secret(None, {})
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret(tmp_path / "missing", {})
    (tmp_path / "empty").write_bytes(b"\n")
    with pytest.raises(ConfigError, match="empty"):
        read_secret(tmp_path / "empty", {})


def test_unusable_public_keys_are_configuration_errors(
    tmp_path: Path, rsa_keys: tuple[bytes, bytes]
) -> None:
    """A file without PEM, a private key given as the public one: refused before serving."""
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM"):
        read_key_file(junk, "--jwt-public-key-file")
    with pytest.raises(ConfigError, match="not usable"):
        TokenVerifier(AuthConfig(rsa_keys[0], algorithm="RS256"))


# --------------------------------------------------------------------------- turingcore token


def test_token_command_prints_a_token_the_service_accepts(
    tmp_path: Path, hs256: TokenVerifier
) -> None:
    """`turingcore token --tenant cu-a --secret-file F` prints one line: a valid token."""
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    args = ["token", "--tenant", "cu-a", "--secret-file", str(secret_file), "--ttl", "60"]
    result = runner.invoke(app, [*args, "--issuer", ISSUER, "--audience", AUDIENCE])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert "\n" not in token
    assert hs256.tenant_of(bearer(token)) == "cu-a"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["exp"] - claims["iat"] == 60


def test_token_command_signs_rs256_with_a_private_key(
    tmp_path: Path, rs256: TokenVerifier, rsa_keys: tuple[bytes, bytes]
) -> None:
    """With --private-key-file the token is RS256 and verifies against the public key."""
    key_file = tmp_path / "private.pem"
    key_file.write_bytes(rsa_keys[0])
    result = runner.invoke(
        app,
        ["token", "--tenant", "cu-b", "--private-key-file", str(key_file)]
        + ["--issuer", ISSUER, "--audience", AUDIENCE],
    )
    assert result.exit_code == 0, result.output
    assert rs256.tenant_of(bearer(result.stdout.strip())) == "cu-b"


def test_token_command_without_a_secret_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """No --secret-file and no TURINGCORE_JWT_SECRET: exit 2 and a message naming both."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    result = runner.invoke(app, ["token", "--tenant", "cu-a"])
    assert result.exit_code == 2
    assert SECRET_ENV in result.stderr
    assert "--jwt-secret-file" in result.stderr or "secret" in result.stderr

"""API keys and roles without I/O: the hash format, verification, configuration parsing,
role checks, and the per-process cache of verified keys."""

from __future__ import annotations

import asyncio
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException
from typer.testing import CliRunner

from lottrace.cli import app as cli
from shared.runtime import auth
from shared.runtime.auth import (
    AuthConfigError,
    Authenticator,
    Principal,
    Role,
    hash_key,
    load_entries,
    parse_entries,
    parse_hash,
    verify_key,
)

FAST = auth.MIN_ITERATIONS  # the cheapest cost the parser accepts: quick tests
KEY = "k3y-for-the-unit-tests-0123456789"


def entry(name: str, *roles: str, key: str = KEY) -> dict[str, Any]:
    return {"name": name, "roles": list(roles), "hash": hash_key(key, iterations=FAST)}


def test_a_hash_has_the_documented_format_and_verifies_its_key_only() -> None:
    encoded = hash_key(KEY, iterations=FAST)
    scheme, iterations, salt, derived = encoded.split("$")

    assert (scheme, iterations) == ("pbkdf2_sha256", str(FAST))
    assert len(auth._b64decode(salt)) == auth.SALT_BYTES
    assert len(auth._b64decode(derived)) == 32
    assert KEY not in encoded
    assert verify_key(KEY, encoded)
    assert not verify_key(KEY + "x", encoded)
    assert not verify_key(KEY.upper(), encoded)


def test_each_hash_gets_its_own_salt() -> None:
    first, second = hash_key(KEY, iterations=FAST), hash_key(KEY, iterations=FAST)

    assert first != second
    assert verify_key(KEY, first)
    assert verify_key(KEY, second)


def test_a_known_salt_and_cost_give_the_standard_pbkdf2_value() -> None:
    encoded = hash_key(KEY, iterations=FAST, salt=b"0123456789abcdef")
    parsed = parse_hash(encoded)

    assert parsed.iterations == FAST
    assert parsed.salt == b"0123456789abcdef"
    import hashlib

    assert parsed.derived == hashlib.pbkdf2_hmac("sha256", KEY.encode(), parsed.salt, FAST)


def test_verification_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    encoded = hash_key(KEY, iterations=FAST)

    assert verify_key(KEY, encoded)
    assert not verify_key("another-key-of-enough-length", encoded)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("encoded", "problem"),
    [
        ("plaintext-key-by-mistake", "not a pbkdf2_sha256"),
        ("bcrypt$12$abc$def", "not a pbkdf2_sha256"),
        ("pbkdf2_sha256$many$c2FsdHNhbHQ$aGFzaA", "not a number"),
        ("pbkdf2_sha256$1000$c2FsdHNhbHQ$aGFzaA", "must be 100000"),
        ("pbkdf2_sha256$600000$not base64!$aGFzaA", "not base64"),
        ("pbkdf2_sha256$600000$c2FsdA$" + "A" * 43, "salt must have"),
        ("pbkdf2_sha256$600000$c2FsdHNhbHQ$aGFzaA", "hash must have 32 bytes"),
    ],
)
def test_malformed_hashes_are_refused_with_the_reason(encoded: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_hash(encoded)


def test_too_short_or_odd_keys_cannot_be_hashed() -> None:
    with pytest.raises(ValueError, match="characters"):
        hash_key("short", iterations=FAST)
    with pytest.raises(ValueError, match="printable ASCII"):
        hash_key("has a space in the middle", iterations=FAST)


def test_api_keys_parse_from_json_and_from_a_yaml_or_json_file(tmp_path: Path) -> None:
    from_env = json.dumps([entry("dock-1", "receiver", "viewer")])
    yaml_file = tmp_path / "keys.yaml"
    manager = entry("qa-anna", "recall-manager")
    yaml_file.write_text(
        "keys:\n"
        f"  - name: {manager['name']}\n"
        "    roles: [recall-manager]\n"
        f"    hash: '{manager['hash']}'\n"
    )
    json_file = tmp_path / "keys.json"
    json_file.write_text(json.dumps([entry("ops", "admin")]))

    entries = load_entries(from_env, yaml_file)
    from_json_file = load_entries(None, json_file)

    assert [(e.principal.name, sorted(e.principal.roles)) for e in entries] == [
        ("dock-1", [Role.RECEIVER, Role.VIEWER]),
        ("qa-anna", [Role.RECALL_MANAGER]),
    ]
    assert [e.principal.name for e in from_json_file] == ["ops"]
    assert load_entries(None, None) == []
    assert load_entries("  ", None) == []


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"name": "x"}, "expected a list"),
        (["not-a-mapping"], "entry 0: expected a mapping"),
        ([{"roles": ["viewer"], "hash": "h"}], "name must be"),
        ([{"name": "has space", "roles": ["viewer"], "hash": "h"}], "name must be"),
        ([{"name": "a", "roles": [], "hash": "h"}], "roles must be a non-empty list"),
        ([{"name": "a", "roles": ["reciever"], "hash": "h"}], "unknown roles \\['reciever'\\]"),
        ([{"name": "a", "roles": ["viewer"]}], "hash is missing"),
        ([{"name": "a", "roles": ["viewer"], "hash": "plain"}], "entry 0 \\('a'\\): hash: not"),
        ([{"name": "a", "roles": ["viewer"], "hash": "h", "key": "x"}], "unknown fields"),
    ],
)
def test_malformed_entries_are_refused_at_start_up_naming_the_entry(
    document: Any, problem: str
) -> None:
    with pytest.raises(AuthConfigError, match=problem):
        parse_entries(document, source="API_KEYS")


def test_configuration_errors_never_echo_a_hash_or_key() -> None:
    secret_looking = "pbkdf2_sha256$600000$c2VjcmV0c2FsdA$dG9vLXNob3J0"
    with pytest.raises(AuthConfigError) as raised:
        parse_entries([{"name": "a", "roles": ["viewer"], "hash": secret_looking}], source="X")

    assert "c2VjcmV0c2FsdA" not in str(raised.value)


def test_api_keys_must_be_json_and_names_unique(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="API_KEYS is not JSON"):
        load_entries("[{name: a}]", None)
    with pytest.raises(AuthConfigError, match="names must be unique"):
        load_entries(json.dumps([entry("a", "viewer"), entry("a", "receiver")]), None)
    with pytest.raises(AuthConfigError, match="cannot read it"):
        load_entries(None, tmp_path / "missing.yaml")


def test_roles_are_exact_except_admin_which_has_every_role() -> None:
    receiver = Principal("dock-1", frozenset({Role.RECEIVER}))
    admin = Principal("ops", frozenset({Role.ADMIN}))

    assert receiver.has(Role.RECEIVER)
    assert not receiver.has(Role.VIEWER)
    assert not receiver.has(Role.RECALL_MANAGER)
    assert all(admin.has(role) for role in Role)
    assert str(receiver) == "dock-1"


def authenticator(*entries: dict[str, Any]) -> Authenticator:
    return Authenticator("required", parse_entries(list(entries), source="API_KEYS"))


def counted_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys Authenticator.match verifies from now on, in order (it still verifies them)."""
    runs: list[str] = []
    real = Authenticator.match

    def counted(self: Authenticator, key: str) -> Principal | None:
        runs.append(key)
        return real(self, key)

    monkeypatch.setattr(Authenticator, "match", counted)
    return runs


async def test_a_key_is_verified_once_per_process_then_served_from_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = authenticator(entry("viewer-1", "viewer"), entry("dock-1", "receiver", key=KEY + "2"))
    runs = counted_verifications(monkeypatch)

    principals = await asyncio.gather(*(keys.authenticate(KEY + "2") for _ in range(20)))
    again = await keys.authenticate(KEY + "2")

    assert {p.name for p in principals} == {again.name} == {"dock-1"}
    assert len(runs) == 1  # concurrent first requests share one verification
    assert KEY + "2" not in repr(keys._known)  # remembered by digest, not in plain text


async def test_unknown_missing_and_implausible_keys_get_401_with_a_bearer_challenge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = authenticator(entry("viewer-1", "viewer"))
    runs = counted_verifications(monkeypatch)

    for presented in (None, "", "short", "x" * 1000, "wrong-key-but-plausible-length"):
        with pytest.raises(HTTPException) as refused:
            await keys.authenticate(presented)
        assert refused.value.status_code == 401
        assert refused.value.headers == {"WWW-Authenticate": "Bearer"}
    with pytest.raises(HTTPException):
        await keys.authenticate("wrong-key-but-plausible-length")

    assert runs == ["wrong-key-but-plausible-length"]  # rejected once, then remembered


async def test_without_configured_keys_every_key_is_refused_and_readiness_says_why() -> None:
    keys = Authenticator("required", [])

    assert keys.problem is not None
    assert "no API keys are configured" in keys.problem
    with pytest.raises(HTTPException) as refused:
        await keys.authenticate(KEY)
    assert refused.value.status_code == 401
    assert Authenticator("disabled", []).problem is None


def test_the_cli_hashes_a_piped_key_and_generates_one_on_request() -> None:
    runner = CliRunner()

    piped = runner.invoke(
        cli,
        ["hash-key", "--name", "dock-1", "--role", "receiver", "--iterations", str(FAST)],
        input=KEY + "\n",
    )
    generated = runner.invoke(
        cli,
        ["hash-key", "--name", "ops", "--role", "admin", "--generate", "--iterations", str(FAST)],
    )

    assert piped.exit_code == 0, piped.output
    printed = json.loads(piped.stdout.strip().splitlines()[-1])
    assert printed["name"] == "dock-1"
    assert printed["roles"] == ["receiver"]
    assert verify_key(KEY, printed["hash"])
    assert KEY not in piped.stdout
    assert generated.exit_code == 0, generated.output
    new = json.loads(generated.stdout.strip().splitlines()[-1])
    key = generated.stderr.split("API key: ")[1].split()[0]
    assert verify_key(key, new["hash"])
    assert parse_entries([new], source="output")[0].principal.roles == {Role.ADMIN}


def test_the_cli_refuses_an_unknown_role_and_a_weak_key() -> None:
    runner = CliRunner()

    bad_role = runner.invoke(cli, ["hash-key", "--name", "a", "--role", "boss"], input=KEY)
    weak = runner.invoke(cli, ["hash-key", "--name", "a", "--role", "viewer"], input="secret\n")

    assert bad_role.exit_code != 0
    assert weak.exit_code != 0
    assert "characters" in weak.output

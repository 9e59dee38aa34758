"""Who may call a service: API keys from configuration, hashed at rest, and roles per route.

Keys are configured as entries `{name, roles, hash}` in `API_KEYS` (a JSON list) and/or
`API_KEYS_FILE` (YAML or JSON: a list, or `{keys: [...]}`); `lottrace hash-key` makes an
entry. A client sends its key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.

`hash` is PBKDF2-HMAC-SHA256 with a per-key random salt, written
`pbkdf2_sha256$<iterations>$<salt>$<derived key>` (base64, no padding; the Django / PHC
layout). Checking a key costs the KDF once per key and process: a verified key is remembered
by its SHA-256 (never in plain text), so steady traffic pays a dictionary look-up, not the KDF.
Unknown keys are remembered too (bounded), KDF work runs in a worker thread with limited
concurrency, and concurrent first requests with one key share one verification: a flood of
bad keys cannot stall the event loop or the requests of known clients.

Each route declares the role it needs (`dependencies=[requires(Role.RECEIVER)]`); a
principal has exactly its roles, except `admin`, which has every role. `create_http_app`
refuses to build an app with a route that declares none.

`AUTH_MODE=disabled` lets every request through as the principal named by `X-Actor` (else
`anonymous`): for demos only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter

from shared.runtime.actors import declared_actor
from shared.runtime.logging import get_logger

log = get_logger(__name__)

AuthMode = Literal["required", "disabled"]

SCHEME = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
MIN_ITERATIONS = 100_000
MAX_ITERATIONS = 10_000_000
SALT_BYTES = 16
MIN_SALT_BYTES = 8
DERIVED_BYTES = 32
MIN_KEY_LENGTH = 16
MAX_KEY_LENGTH = 512
REJECTED_CACHE_SIZE = 10_000
CONCURRENT_VERIFICATIONS = 2

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")

REFUSED = Counter(
    "lottrace_auth_refused_total",
    "Requests refused by authentication or authorisation, by reason.",
    ["reason"],
)


class Role(StrEnum):
    RECEIVER = "receiver"
    SHIPPER = "shipper"
    INVENTORY_CONTROLLER = "inventory-controller"
    RECALL_MANAGER = "recall-manager"
    VIEWER = "viewer"
    ADMIN = "admin"  # every role


class AuthConfigError(ValueError):
    """The configured keys cannot be used; raised at start-up, naming the entry."""


# ---------------------------------------------------------------------- hashing


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@dataclass(frozen=True)
class KeyHash:
    iterations: int
    salt: bytes
    derived: bytes

    def matches(self, key: str) -> bool:
        candidate = hashlib.pbkdf2_hmac("sha256", key.encode(), self.salt, self.iterations)
        return hmac.compare_digest(candidate, self.derived)


def hash_key(key: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    """The at-rest form of `key`: `pbkdf2_sha256$<iterations>$<salt>$<derived key>`."""
    check_key_shape(key)
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be {MIN_ITERATIONS}..{MAX_ITERATIONS}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    derived = hashlib.pbkdf2_hmac("sha256", key.encode(), salt, iterations, DERIVED_BYTES)
    return f"{SCHEME}${iterations}${_b64encode(salt)}${_b64encode(derived)}"


def parse_hash(encoded: str) -> KeyHash:
    """Reads a `hash` value; ValueError says what is wrong (never echoing the value)."""
    parts = encoded.strip().split("$")
    if len(parts) != 4 or parts[0] != SCHEME:
        raise ValueError(
            f"not a {SCHEME}$<iterations>$<salt>$<hash> value (make one with `lottrace hash-key`)"
        )
    _, iterations_text, salt_text, derived_text = parts
    if not iterations_text.isdigit():
        raise ValueError("the iteration count is not a number")
    iterations = int(iterations_text)
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"{iterations} iterations: must be {MIN_ITERATIONS}..{MAX_ITERATIONS}")
    try:
        salt, derived = _b64decode(salt_text), _b64decode(derived_text)
    except (binascii.Error, ValueError):
        raise ValueError("the salt or the hash is not base64") from None
    if len(salt) < MIN_SALT_BYTES:
        raise ValueError(f"the salt must have at least {MIN_SALT_BYTES} bytes")
    if len(derived) != DERIVED_BYTES:
        raise ValueError(f"the hash must have {DERIVED_BYTES} bytes")
    return KeyHash(iterations=iterations, salt=salt, derived=derived)


def verify_key(key: str, encoded: str) -> bool:
    """Whether `key` is the key hashed in `encoded` (constant-time comparison)."""
    return parse_hash(encoded).matches(key)


def check_key_shape(key: str) -> None:
    if not MIN_KEY_LENGTH <= len(key) <= MAX_KEY_LENGTH:
        raise ValueError(f"an API key has {MIN_KEY_LENGTH}..{MAX_KEY_LENGTH} characters")
    if not _plausible(key):
        raise ValueError("an API key is printable ASCII without spaces")


def _plausible(key: str) -> bool:
    return (
        MIN_KEY_LENGTH <= len(key) <= MAX_KEY_LENGTH
        and key.isascii()
        and key.isprintable()
        and " " not in key
    )


def generate_key() -> str:
    """A new random key: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


# ---------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (recorded as the actor of what it changes) and roles."""

    name: str
    roles: frozenset[Role]
    authenticated: bool = True

    def has(self, role: Role) -> bool:
        return Role.ADMIN in self.roles or role in self.roles

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class KeyEntry:
    principal: Principal
    key_hash: KeyHash

    def __repr__(self) -> str:  # never the hash, even in a traceback
        return f"KeyEntry(name={self.principal.name!r}, roles={sorted(self.principal.roles)})"


def parse_entries(entries: Any, *, source: str) -> list[KeyEntry]:
    """Validates configured entries; AuthConfigError lists every problem, by entry."""
    if isinstance(entries, Mapping) and set(entries) == {"keys"}:
        entries = entries["keys"]
    if not isinstance(entries, list):
        raise AuthConfigError(f"{source}: expected a list of {{name, roles, hash}} entries")
    problems: list[str] = []
    parsed: list[KeyEntry] = []
    for index, entry in enumerate(entries):
        where = f"{source} entry {index}"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected a mapping {{name, roles, hash}}")
        elif (key := _entry(entry, where, problems)) is not None:
            parsed.append(key)
    if problems:
        raise AuthConfigError("; ".join(problems))
    return parsed


def _entry(entry: Mapping[str, Any], where: str, problems: list[str]) -> KeyEntry | None:
    """One entry, or None with what is wrong with it added to `problems`."""
    name = entry.get("name")
    if isinstance(name, str):
        where = f"{where} ({name!r})"
    unknown = set(entry) - {"name", "roles", "hash"}
    if unknown:
        problems.append(f"{where}: unknown fields {sorted(unknown)}")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.append(
            f"{where}: name must be 1-100 of letters, digits, '.', '_', '@', '-'"
            " (it is recorded as the actor)"
        )
    roles = _roles(entry.get("roles"), where, problems)
    key_hash = _key_hash(entry.get("hash"), where, problems)
    if key_hash is None or not isinstance(name, str) or not roles:
        return None
    return KeyEntry(Principal(name=name, roles=frozenset(roles)), key_hash)


def _roles(given: Any, where: str, problems: list[str]) -> list[Role]:
    """The entry's roles (one may be given alone), or none with the problem said."""
    roles = [given] if isinstance(given, str) else given
    valid = ", ".join(role.value for role in Role)
    if not isinstance(roles, list) or not roles:
        problems.append(f"{where}: roles must be a non-empty list of: {valid}")
        return []
    bad_roles = [role for role in roles if role not in Role._value2member_map_]
    if bad_roles:
        problems.append(f"{where}: unknown roles {bad_roles} (roles: {valid})")
        return []
    return [Role(role) for role in roles]


def _key_hash(encoded: Any, where: str, problems: list[str]) -> KeyHash | None:
    if not isinstance(encoded, str):
        problems.append(f"{where}: hash is missing (make one with `lottrace hash-key`)")
        return None
    try:
        return parse_hash(encoded)
    except ValueError as error:
        problems.append(f"{where}: hash: {error}")
        return None


def load_entries(api_keys: str | None, api_keys_file: Path | None) -> list[KeyEntry]:
    """The keys of `API_KEYS` (JSON) and `API_KEYS_FILE` (YAML or JSON) together."""
    entries: list[KeyEntry] = []
    if api_keys is not None and api_keys.strip():
        try:
            document = json.loads(api_keys)
        except json.JSONDecodeError as error:
            raise AuthConfigError(
                f"API_KEYS is not JSON (line {error.lineno}, column {error.colno}): expected a"
                " list of {name, roles, hash} entries"
            ) from None
        entries += parse_entries(document, source="API_KEYS")
    if api_keys_file is not None:
        try:
            text = api_keys_file.read_text(encoding="utf-8")
        except OSError as error:
            raise AuthConfigError(
                f"API_KEYS_FILE {api_keys_file}: cannot read it ({error.strerror})"
            ) from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError:
            raise AuthConfigError(f"API_KEYS_FILE {api_keys_file}: not YAML or JSON") from None
        entries += parse_entries(document or [], source=f"API_KEYS_FILE {api_keys_file}")
    names = [entry.principal.name for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise AuthConfigError(
            f"API keys: names must be unique (each is recorded as an actor): {duplicates}"
        )
    return entries


# ---------------------------------------------------------------------- checking requests


def _unauthorized(detail: str, reason: str) -> HTTPException:
    REFUSED.labels(reason).inc()
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


class Authenticator:
    """Turns a presented key into a Principal, remembering the outcome per key digest."""

    def __init__(self, mode: AuthMode, entries: Sequence[KeyEntry]) -> None:
        self.mode = mode
        self.entries = tuple(entries)
        self._known: dict[bytes, Principal] = {}
        self._rejected: OrderedDict[bytes, None] = OrderedDict()
        self._pending: dict[bytes, asyncio.Task[Principal | None]] = {}
        self._verifications: asyncio.Semaphore | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> Authenticator:
        api_keys = settings.api_keys.get_secret_value() if settings.api_keys else None
        return cls(settings.auth_mode, load_entries(api_keys, settings.api_keys_file))

    @property
    def names(self) -> list[str]:
        return [entry.principal.name for entry in self.entries]

    @property
    def problem(self) -> str | None:
        """Why no request can be served (reported by /readyz), or None."""
        if self.mode == "required" and not self.entries:
            return (
                "AUTH_MODE=required but no API keys are configured (API_KEYS, API_KEYS_FILE):"
                " every request is refused with 401"
            )
        return None

    def match(self, key: str) -> Principal | None:
        """The principal whose hash `key` matches (the KDF, once per entry at most)."""
        for entry in self.entries:
            if entry.key_hash.matches(key):
                return entry.principal
        return None

    async def authenticate(self, key: str | None) -> Principal:
        if not self.entries:
            raise _unauthorized(
                "no API keys are configured on this service; every request is refused",
                "no_keys",
            )
        if not key:
            raise _unauthorized(
                "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                "missing",
            )
        if not _plausible(key):
            raise _unauthorized("unknown API key", "unknown")
        digest = hashlib.sha256(key.encode()).digest()
        principal = self._known.get(digest)
        if principal is not None:
            return principal
        if digest not in self._rejected:
            task = self._pending.get(digest)
            if task is None:
                task = asyncio.create_task(self._verify(key, digest))
                self._pending[digest] = task
            # Shielded: a client that hangs up does not cancel others waiting on the same key.
            principal = await asyncio.shield(task)
            if principal is not None:
                return principal
        raise _unauthorized("unknown API key", "unknown")

    async def _verify(self, key: str, digest: bytes) -> Principal | None:
        try:
            if self._verifications is None:
                self._verifications = asyncio.Semaphore(CONCURRENT_VERIFICATIONS)
            async with self._verifications:
                principal = await asyncio.to_thread(self.match, key)
            if principal is None:
                self._rejected[digest] = None
                while len(self._rejected) > REJECTED_CACHE_SIZE:
                    self._rejected.popitem(last=False)
            else:
                self._known[digest] = principal
            return principal
        finally:
            self._pending.pop(digest, None)


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`Authorization: Bearer <API key>`",
)
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="`X-API-Key: <API key>` (the same keys as the bearer scheme)",
)


class RequireRole:
    """The dependency a route declares: authenticates the caller and checks one role."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(
        self,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        api_key: Annotated[str | None, Depends(API_KEY_HEADER)],
    ) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        if authenticator.mode == "disabled":
            principal = Principal(
                name=declared_actor(request), roles=frozenset({Role.ADMIN}), authenticated=False
            )
        else:
            key = bearer.credentials if bearer is not None else api_key
            principal = await authenticator.authenticate(key.strip() if key else None)
            if not principal.has(self.role):
                REFUSED.labels("forbidden").inc()
                route = request.scope.get("route")
                path = getattr(route, "path", request.url.path)
                log.info(
                    "request refused: role missing",
                    principal=principal.name,
                    role=self.role.value,
                    path=path,
                )
                raise HTTPException(
                    403, f"{request.method} {path} needs the {self.role.value} role"
                )
        request.state.principal = principal
        return principal

    def __repr__(self) -> str:
        return f"RequireRole({self.role.value!r})"


def requires(role: Role) -> Any:
    """`dependencies=[requires(Role.VIEWER)]` on a route: the role its callers need."""
    return Depends(RequireRole(role))


def required_role(dependencies: Iterable[Any]) -> Role | None:
    """The role a route's dependencies require, if any."""
    for dependency in dependencies:
        check = getattr(dependency, "dependency", None)
        if isinstance(check, RequireRole):
            return check.role
    return None

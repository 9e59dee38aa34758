"""The staff the authorization tests act as: one API key a role, each key with that role only,
so a request that succeeds shows that the one role is enough."""

from __future__ import annotations

from shared.runtime.auth import Role
from tests.integration.service_apps import ADMIN_KEY, api_keys

VIEWER = "viewer-key-for-integration-0001"
RECEIVER = "receiver-key-for-integration-01"
SHIPPER = "shipper-key-for-integration-001"
CONTROLLER = "controller-key-for-integration1"
MANAGER = "recall-manager-key-integration1"

# Audit trails record these names: shipper-sam ships, qa-bob holds, rm-carla recalls.
KEYS = api_keys(
    ("admin", ADMIN_KEY, (Role.ADMIN,)),
    ("viewer-vic", VIEWER, (Role.VIEWER,)),
    ("dock-dora", RECEIVER, (Role.RECEIVER,)),
    ("shipper-sam", SHIPPER, (Role.SHIPPER,)),
    ("qa-bob", CONTROLLER, (Role.INVENTORY_CONTROLLER,)),
    ("rm-carla", MANAGER, (Role.RECALL_MANAGER,)),
)


def bearer(key: str, **extra: str) -> dict[str, str]:
    """Headers that present `key` as a bearer token, with any `extra` headers."""
    return {"Authorization": f"Bearer {key}", **extra}

"""A service's wiring, written once: the settings each service declares under its own name,
its consumer group, its runtime and its HTTP app. Nothing connects at import."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI

from shared.contracts.events import Event
from shared.runtime.consumer import BatchConsumer, EventHandler
from shared.runtime.http import create_http_app
from shared.runtime.migrations import service_migrations
from shared.runtime.replay import ReplayPlan
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import ServiceSettings

Handlers = Sequence[tuple[type[Event], EventHandler]]
Background = Callable[[ServiceRuntime], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ServiceWiring:
    """What one service is made of besides its rules and settings: name, routes, migrations
    (its own folder's, `services/<name>/migrations`)."""

    name: str
    description: str
    router: APIRouter
    migrations: Path = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "migrations", service_migrations(self.name))

    def consumer(self, settings: ServiceSettings, handlers: Handlers) -> BatchConsumer:
        """The service's consumer group, named after it, reading what its handlers handle."""
        return BatchConsumer(
            group_id=self.name, handlers=handlers, max_value_bytes=settings.kafka.max_message_bytes
        )

    def app(
        self,
        settings: ServiceSettings,
        *,
        handlers: Handlers | None = None,
        background: Sequence[Background] = (),
        state: Mapping[str, object] | None = None,
    ) -> FastAPI:
        """The HTTP app over the service's runtime; `state` goes to `app.state` for its routes.

        A service without `handlers` consumes no topic (it has no consumer group).
        """
        runtime = ServiceRuntime(
            name=self.name,
            settings=settings,
            migrations=self.migrations,
            consumer=self.consumer(settings, handlers) if handlers is not None else None,
            background=list(background),
        )
        app = create_http_app(
            runtime,
            title=f"lottrace {self.name}",
            description=self.description,
            routers=[self.router],
        )
        for key, value in (state or {}).items():
            setattr(app.state, key, value)
        return app

    def unsupported_replay(self, reason: str) -> ReplayPlan:
        """The plan of a service whose state its topics cannot rebuild, saying why."""
        return ReplayPlan(service=self.name, migrations=self.migrations, unsupported=reason)

"""What each domain adds to the HTTP API and the command line, in one list (datasette-style hooks).

A new domain (traffic, transit, water, drones) is a :class:`cityhub.domain.Domain` started by
:func:`cityhub.hub.open_hub`, plus one entry here naming its routers and commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import typer
from fastapi import APIRouter

from cityhub.alerts.cli import rules_app
from cityhub.api.alerts import router as alerts_router
from cityhub.api.aqi import router as aqi_router
from cityhub.api.deadletters import router as deadletters_router


@dataclass(frozen=True)
class Plugin:
    name: str
    routers: Sequence[APIRouter] = ()
    commands: Sequence[tuple[str, typer.Typer]] = field(default_factory=tuple)  # (name, sub-app)


PLUGINS: tuple[Plugin, ...] = (
    Plugin("airquality", routers=(aqi_router,)),
    Plugin("alerts", routers=(alerts_router,), commands=(("rules", rules_app),)),
    Plugin("mqtt", routers=(deadletters_router,)),
)

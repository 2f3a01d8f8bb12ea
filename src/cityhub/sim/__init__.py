"""A simulated Hanoi, calibrated on real series: air-quality stations, traffic detectors and water gauges.

>>> from cityhub.sim import FaultConfig, Simulator
>>> sim = Simulator(seed=7, start=datetime(2017, 1, 10, tzinfo=UTC), faults=FaultConfig())
>>> sim.sensors()[0].key, len(sim.step(datetime(2017, 1, 11, tzinfo=UTC)))

Modules: ``facts`` (where the sensors are), ``params`` (fitted parameters and assumptions), ``fit`` (recomputes the
parameters from ../shared/data: ``python -m cityhub.sim.fit``), ``model`` (the series), ``faults`` (what goes
wrong), ``generator`` (the stream), ``entities`` (SensorThings entities for the sensors), ``cli`` (``cityhub
simulate``). The demo city of ``cityhub serve --demo`` is :mod:`cityhub.demo`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FaultConfig", "Reading", "SensorSpec", "Simulator", "sensors"]


def __getattr__(name: str) -> Any:  # imported lazily: the `cityhub` command should not pay for NumPy
    if name == "FaultConfig":
        from cityhub.sim.faults import FaultConfig

        return FaultConfig
    if name in ("Reading", "SensorSpec", "Simulator", "sensors"):
        from cityhub.sim import generator

        return getattr(generator, name)
    raise AttributeError(name)

"""Things for map clients (``GET /api/v1/geo/things``): each Thing's first Location and its Datastreams; each
Datastream's observedArea."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from cityhub.store.transaction import Transaction


class GeoOps(abc.ABC):
    @abc.abstractmethod
    def things(
        self, kind_hints: Sequence[str], observed_properties: Sequence[str]
    ) -> tuple[list[tuple[int, str, str | None, str | None]], list[tuple[Any, ...]]]:
        """(Things, Datastreams): Things as (id, name, properties JSON text, first Location JSON text) and their
        Datastreams as (id, thing id, name, unitOfMeasurement JSON text, ObservedProperty name, definition),
        both ordered by id. ``kind_hints`` keeps Things whose properties text contains one of them (a cheap
        pre-filter: the caller tests ``properties.kind`` exactly); ``observed_properties`` keeps Things with a
        Datastream whose ObservedProperty definition or name is one of them."""

    # -- observedArea ---------------------------------------------------------------------------------------------
    # A Datastream's observedArea is the convex hull of the geometries of the FeaturesOfInterest its Observations
    # have, as FROST-Server keeps it (SensorThings §8.2.4 asks for "the spatial bounding box"; a hull is within the
    # box and exact for one point or a line). Kept from the (Datastream, FeatureOfInterest) pairs stored, in the
    # table datastream_features; Features without a GeoJSON geometry (text/plain) add nothing.

    @abc.abstractmethod
    def extend_observed_areas(self, pairs: Sequence[tuple[int, int]]) -> list[int]:
        """Record (Datastream, FeatureOfInterest) pairs, in a transaction of their own; the observedArea of each
        Datastream that got a pair it did not have is recomputed. Returns those Datastreams' ids."""

    @abc.abstractmethod
    def recompute_observed_areas(self, tx: Transaction, datastream_ids: Sequence[int]) -> None:
        """Set the observedArea of these Datastreams from their recorded pairs (NULL with none)."""

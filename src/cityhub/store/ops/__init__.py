"""The store's named operations, one module per aggregate (alerts, webhooks, dead letters, entities, …).

Each module defines an abstract class; every backend implements it in its own folder
(``store/duckdb/<aggregate>.py``) and exposes it as an attribute of its Store (``store.alerts``). Callers outside
``store/`` use these operations and never write SQL; the contract tests (``tests/test_store_contract.py``) run the
same checks against every backend.
"""

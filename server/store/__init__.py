"""Document storage (see docs/architecture.md): the Store protocol, its models and two backends."""

from __future__ import annotations

from server.store import models
from server.store.base import DuplicateError, Fields, Store

__all__ = ["DuplicateError", "Fields", "Store", "models"]

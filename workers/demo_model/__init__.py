"""The local demo model: OpenAI-compatible, deterministic answers, injectable failures."""

from __future__ import annotations

from workers.demo_model.config import DemoConfig, DemoStats
from workers.demo_model.faults import parse_markers, strip_markers
from workers.demo_model.server import DemoModelServer

__all__ = ["DemoConfig", "DemoModelServer", "DemoStats", "parse_markers", "strip_markers"]

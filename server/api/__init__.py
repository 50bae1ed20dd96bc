"""HTTP API: request parsing helpers, health and metrics routes."""

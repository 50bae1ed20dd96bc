"""Notifications: a per-user webhook told when a run ends or waits (signed, retried, logged)."""

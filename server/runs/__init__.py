"""Runs: their lifecycle (shared by server and workers), queueing and REST routes."""

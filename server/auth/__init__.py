"""Accounts: password hashing, JWTs, identity of a request, auth routes."""

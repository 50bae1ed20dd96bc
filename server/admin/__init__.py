"""Admin: the admin role, the admin REST API and ``python -m server admin``."""

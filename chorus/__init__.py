"""The launcher: ``python -m chorus`` serves the web app with the embedded services.

It is the only package that imports both ``server`` (the domain and the web app) and
``workers`` (the stage jobs, the demo model); ``workers`` imports ``server``, never the
reverse (an import-linter contract in pyproject.toml keeps it so).
"""

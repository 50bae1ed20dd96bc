"""`python -m server`: serve Chorus — the web entry point deployments use (Procfile, image).

The embedded mode's wiring (private Redis, demo model, in-process worker) lives in the
launcher package `chorus`, the one package that imports both `server` and `workers`;
this entry point only hands over to it (the one import from `server` to the launcher,
allowed by name in the import-linter contract). `python -m chorus` does the same.
`python -m server admin …` manages accounts instead (server/admin/cli.py).
"""

from __future__ import annotations

import sys

from chorus.__main__ import serve
from server.cli import run_cli

if __name__ == "__main__":
    if sys.argv[1:2] == ["admin"]:
        from server.admin.cli import main

        raise SystemExit(main(sys.argv[2:]))
    run_cli("chorus", serve)

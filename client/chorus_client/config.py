"""Where the CLI finds its server and credentials: flags, then environment, then a file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8080"


def config_path(env: Mapping[str, str]) -> Path:
    """``$CHORUS_CONFIG``, else ``~/.config/chorus/config.json``."""
    if env.get("CHORUS_CONFIG"):
        return Path(env["CHORUS_CONFIG"])
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "chorus" / "config.json"


@dataclass(frozen=True)
class CliConfig:
    """The server URL and the credential (API key or login token) to use."""

    url: str
    token: str | None

    @classmethod
    def load(
        cls, env: Mapping[str, str], url: str | None = None, token: str | None = None
    ) -> CliConfig:
        """Flags win over ``CHORUS_URL`` / ``CHORUS_API_KEY`` / ``CHORUS_TOKEN``, then the file."""
        saved: dict[str, str] = {}
        path = config_path(env)
        if path.exists():
            saved = json.loads(path.read_text())
        return cls(
            url=url or env.get("CHORUS_URL") or saved.get("url") or DEFAULT_URL,
            token=token or env.get("CHORUS_API_KEY") or env.get("CHORUS_TOKEN")
            or saved.get("token"),
        )  # fmt: skip

    def save(self, env: Mapping[str, str]) -> Path:
        """Write the URL and token to the config file, readable by the owner only."""
        path = config_path(env)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"url": self.url, "token": self.token}, out)
        return path

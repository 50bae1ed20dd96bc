"""Every Redis key and channel name Chorus uses, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    """Key names under one prefix, so several deployments can share a Redis."""

    prefix: str = "chorus"

    def jwt_denied(self, jti: str) -> str:
        """Denylist entry for a revoked token, kept until the token expires."""
        return f"{self.prefix}:jwt:deny:{jti}"

    def revocations_channel(self) -> str:
        """Pub/sub channel announcing revoked token ids to every web process."""
        return f"{self.prefix}:jwt:revoked"

    def rate(self, scope: str, subject: str) -> str:
        """Sliding-window counter for one rate-limit scope and subject."""
        return f"{self.prefix}:rate:{scope}:{subject}"

    def session_seq(self, session_id: str) -> str:
        """Hash {seq, epoch} of a session's event counter."""
        return f"{self.prefix}:sess:{session_id}:seq"

    def session_stream(self, session_id: str) -> str:
        """Bounded stream of a session's recent events (the replay log)."""
        return f"{self.prefix}:sess:{session_id}:events"

    def session_channel(self, session_id: str) -> str:
        """Pub/sub channel carrying a session's live events."""
        return f"{self.prefix}:sess:{session_id}:live"

    def session_channel_pattern(self) -> str:
        """Pattern matching every session channel (for parsing names back)."""
        return f"{self.prefix}:sess:*:live"

    def run_cancel(self, run_id: str) -> str:
        """Flag set when a run's cancel is requested; polled by the worker."""
        return f"{self.prefix}:run:{run_id}:cancel"

    def arq_queue(self) -> str:
        """The arq queue stage jobs go to."""
        return f"{self.prefix}:queue"

    def arq_wake_channel(self) -> str:
        """Pub/sub channel naming each job just queued, so workers start it without polling."""
        return f"{self.prefix}:queue:wake"

    def stage_job_id(self, run_id: str, stage_index: int, generation: int = 0) -> str:
        """Stable arq job id: one job per run stage (per retry generation)."""
        return f"stage:{run_id}:{stage_index}:{generation}"

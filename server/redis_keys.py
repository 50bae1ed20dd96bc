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

    def user_disabled(self, user_id: str) -> str:
        """Set while a user is disabled: what a hub that was away from Redis checks."""
        return f"{self.prefix}:user:{user_id}:disabled"

    def usage_day(self, user_id: str | None, day: str) -> str:
        """Hash {tokens, cost, init}: a user's (None: everyone's) spend on one UTC day."""
        return f"{self.prefix}:usage:{user_id or '*'}:{day}"

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

    def session_watchers(self, session_id: str) -> str:
        """Sorted set: ids of the subscribers watching a session -> expiry (ms, Redis clock)."""
        return f"{self.prefix}:sess:{session_id}:watchers"

    def webhook_job_id(self, delivery_id: str) -> str:
        """Stable arq job id of a webhook delivery (its retries keep it)."""
        return f"webhook:{delivery_id}"

    def run_cancel(self, run_id: str, generation: int) -> str:
        """Flag set when a run's cancel is requested, per generation; polled by the worker.

        Per generation, so a retry right after a cancel is not hit by the old stream's flag
        being cleared, nor the new stream by the old flag.
        """
        return f"{self.prefix}:run:{run_id}:cancel:{generation}"

    def run_fence(self, run_id: str) -> str:
        """The run's current generation (fencing token): older generations publish nothing."""
        return f"{self.prefix}:run:{run_id}:gen"

    def run_partial(self, run_id: str) -> str:
        """Text streamed so far by the run's running stage."""
        return f"{self.prefix}:run:{run_id}:partial"

    def run_partial_meta(self, run_id: str) -> str:
        """Hash {stage, seq, epoch}: which stage the partial text is of, as of which event."""
        return f"{self.prefix}:run:{run_id}:partial:meta"

    def lease_deadlines(self) -> str:
        """Sorted set: run id -> deadline (ms, Redis clock) of the lease on its running stage."""
        return f"{self.prefix}:leases"

    def lease_tokens(self) -> str:
        """Hash: run id -> lease token "<generation>:<stage index>:<holder>"."""
        return f"{self.prefix}:leases:tokens"

    def redis_sentinel(self) -> str:
        """A key written once per Redis dataset: its absence means Redis lost its data."""
        return f"{self.prefix}:sentinel"

    def arq_queue(self) -> str:
        """The arq queue stage jobs go to."""
        return f"{self.prefix}:queue"

    def arq_wake_channel(self) -> str:
        """Pub/sub channel naming each job just queued, so workers start it without polling."""
        return f"{self.prefix}:queue:wake"

    def stage_job_id(self, run_id: str, stage_index: int, generation: int = 0) -> str:
        """Stable arq job id: one job per run stage (per retry generation)."""
        return f"stage:{run_id}:{stage_index}:{generation}"

    def openai_conversation(self, digest: str) -> str:
        """The session that continues a /v1 conversation, by a digest of its turns so far."""
        return f"{self.prefix}:v1conv:{digest}"

"""Every documented HTTP operation: what it takes, answers and may refuse.

The OpenAPI document is built from this table and the app's routes; a test fails when a
route (other than the UI's) has no entry here or an entry has no route. A new route needs one
``Operation`` below (and ``make docs`` to refresh docs/openapi.json).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from server.admin.schemas import ListUsersQuery, UserPatch
from server.api import responses as r
from server.apikeys.schemas import ApiKeyCreated, ApiKeyList, CreateKeyBody
from server.auth.schemas import LoginBody, RegisterBody
from server.notify.schemas import (
    DeliveriesQuery,
    DeliveryEnvelope,
    DeliveryList,
    PutWebhookBody,
    WebhookPut,
    WebhookView,
)
from server.openai_api.schemas import (
    ChatCompletion,
    ChatCompletionBody,
    ModelInfo,
    ModelList,
    OpenAiErrorBody,
)
from server.runs.schemas import ApproveBody, RegenerateBody, RejectBody, RerunStageBody
from server.sessions.schemas import (
    CreateSessionBody,
    ListMessagesQuery,
    ListSessionsQuery,
    PostMessageBody,
    RenameSessionBody,
    SelectBranchBody,
    SessionQuery,
)
from server.sse.routes import EventsQuery
from server.store.models import ChatSession, Run

# Statuses an authenticated request may get whatever it asks: no or a bad token, a cookie
# request without X-Requested-With or from a foreign Origin, the per-user API rate limit.
AUTH_ERRORS = (401, 403, 429)
# A JSON body: not JSON, too large, not application/json, fails validation.
BODY_ERRORS = (400, 413, 415, 422)


@dataclass(frozen=True)
class Operation:
    """One method on one path, as the document describes it."""

    summary: str
    tag: str
    status: int  # the success status
    response: type[BaseModel] | str | None  # a model, a media type of a text answer, or no body
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()  # answered with the error envelope
    auth: bool = True
    description: str = ""
    also: tuple[int, ...] = ()  # other statuses answered with the success body
    error_model: type[BaseModel] | None = None  # errors in another envelope than the API's
    streams: bool = False  # the answer does not end (SSE): not fuzzed on real ids


V1 = "/api/v1"
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", f"{V1}/auth/register"): Operation(
        "Create an account", "auth", 201, r.UserEnvelope, body=RegisterBody,
        errors=(*BODY_ERRORS, 409, 429), auth=False,
        description="Password: 8 characters to 72 bytes. 409 `email_taken`. 429 "
        "`rate_limited` past `RATE_REGISTER_PER_IP` per client address.",
    ),
    ("POST", f"{V1}/auth/login"): Operation(
        "Log in: issue a JWT and set the session cookie", "auth", 200, r.LoginAnswer,
        body=LoginBody, errors=(*BODY_ERRORS, 401, 429), auth=False,
        description="401 `invalid_credentials`, the same body and timing for an unknown email. "
        "Rate-limited per email and per client address.",
    ),
    ("POST", f"{V1}/auth/logout"): Operation(
        "Revoke this token, clear the cookie, close its sockets", "auth", 204, None,
        errors=AUTH_ERRORS,
    ),
    ("GET", f"{V1}/auth/me"): Operation("The current user", "auth", 200, r.UserEnvelope,
                                        errors=AUTH_ERRORS),
    ("GET", f"{V1}/pipelines"): Operation(
        "Pipelines with their stages and agents", "pipelines", 200, r.Pipelines,
        errors=AUTH_ERRORS,
    ),
    ("POST", f"{V1}/sessions"): Operation(
        "Create a session", "sessions", 201, ChatSession, body=CreateSessionBody,
        errors=(*AUTH_ERRORS, *BODY_ERRORS),
        description="422 `invalid_request` names an unknown pipeline.",
    ),
    ("GET", f"{V1}/sessions"): Operation(
        "The caller's sessions, newest first", "sessions", 200, r.SessionPage,
        query=ListSessionsQuery, errors=(*AUTH_ERRORS, 422),
        description="The status filter is part of the query: pages are full, `total` exact.",
    ),
    ("GET", f"{V1}/sessions/{{session_id}}"): Operation(
        "A session with its selected branch's recent messages, its active run and its queued "
        "messages", "sessions", 200, r.SessionDetail, query=SessionQuery,
        errors=(*AUTH_ERRORS, 404, 422),
        description="`head` shows the newest branch through that message instead.",
    ),
    ("PATCH", f"{V1}/sessions/{{session_id}}"): Operation(
        "Rename a session or set its double-texting policy", "sessions", 200, ChatSession,
        body=RenameSessionBody, errors=(*AUTH_ERRORS, *BODY_ERRORS, 404),
        description="Only the fields sent change; `double_texting: null` returns the session "
        "to the server's `DOUBLE_TEXTING`.",
    ),
    ("DELETE", f"{V1}/sessions/{{session_id}}"): Operation(
        "Delete a session with its messages and runs", "sessions", 204, None,
        errors=(*AUTH_ERRORS, 404),
        description="An active run is cancelled.",
    ),
    ("GET", f"{V1}/sessions/{{session_id}}/messages"): Operation(
        "Conversation history (the selected branch), paged backwards", "sessions", 200,
        r.MessagePage, query=ListMessagesQuery, errors=(*AUTH_ERRORS, 404, 422),
        description="The cursor is `before` and `before_id`: the `created_at` and "
        "`message_id` of the oldest message shown; each page carries `next_before` and "
        "`next_before_id` while older messages exist (messages sharing a timestamp are never "
        "skipped). `head` reads the newest branch through that message instead of the "
        "selected one. Each message carries `sibling_ids` and `sibling_index`.",
    ),
    ("PUT", f"{V1}/sessions/{{session_id}}/head"): Operation(
        "Select the newest branch through a message", "sessions", 200, ChatSession,
        body=SelectBranchBody, errors=(*AUTH_ERRORS, *BODY_ERRORS, 404, 409),
        description="The session's `head_message_id` becomes the newest tip under the "
        "message; event `branch.selected`. 404 for a message not in the session; 409 "
        "`session_busy` while a run is active.",
    ),
    ("POST", f"{V1}/sessions/{{session_id}}/messages"): Operation(
        "Store the user's message and start a run (or queue it, interrupt, amend)", "runs",
        202, r.PostedMessage, body=PostMessageBody, errors=(*AUTH_ERRORS, *BODY_ERRORS, 404, 409),
        description="While a run is active, the double-texting policy (the body's, else the "
        "session's, else `DOUBLE_TEXTING`) decides: `reject` answers 409 `session_busy`; "
        "`enqueue` and `interrupt` answer `outcome: queued` (`interrupt` cancels the active "
        "run); `amend` answers `outcome: amended` with the active run. 429 `rate_limited` "
        "past the LLM limits, or `budget_exceeded` (with `resets_at` and `Retry-After`) once "
        "a daily budget is spent. With `edit_of` (an earlier user message's id) the message is "
        "an edit of it: a new branch from the same point, which the session selects when it "
        "starts (422 for an unknown or non-user message).",
    ),
    ("DELETE", f"{V1}/sessions/{{session_id}}/messages/{{message_id}}"): Operation(
        "Cancel a queued message", "runs", 200, r.MessageEnvelope,
        errors=(*AUTH_ERRORS, 404, 409),
        description="409 `message_not_queued` once it has started (or was cancelled).",
    ),
    ("GET", f"{V1}/runs/{{run_id}}"): Operation(
        "A run with every stage's status, output (checkpoint), model, attempts, usage",
        "runs", 200, Run, errors=(*AUTH_ERRORS, 404),
    ),
    ("POST", f"{V1}/runs/{{run_id}}/cancel"): Operation(
        "Cancel a run (a finished run is answered as it is)", "runs", 202, r.RunEnvelope,
        errors=(*AUTH_ERRORS, 404),
    ),
    ("POST", f"{V1}/runs/{{run_id}}/retry"): Operation(
        "Resume a failed or cancelled run from its first unfinished stage", "runs", 202,
        r.RunEnvelope, errors=(*AUTH_ERRORS, 404, 409, 422),
        description="409 `session_busy` unless the run failed or was cancelled (or the "
        "session has another active run); 422 when every stage is completed; 429 "
        "`budget_exceeded` once a daily budget is spent.",
    ),
    ("POST", f"{V1}/runs/{{run_id}}/approve"): Operation(
        "Approve the stage a run awaits (its output optionally edited); the run goes on",
        "runs", 202, r.RunEnvelope, body=ApproveBody,
        errors=(*AUTH_ERRORS, *BODY_ERRORS, 404, 409),
        description="The body is optional: `{\"output\": \"...\"}` replaces the stage's "
        "output (the model's is kept as `output_original`). 409 `not_awaiting_approval` "
        "unless the run is `awaiting_approval` (also when a reject, cancel or the timeout "
        "came first).",
    ),
    ("POST", f"{V1}/runs/{{run_id}}/reject"): Operation(
        "Reject the stage a run awaits: the run ends cancelled, its error `rejected`",
        "runs", 200, r.RunEnvelope, body=RejectBody,
        errors=(*AUTH_ERRORS, *BODY_ERRORS, 404, 409),
        description="The body is optional: `{\"reason\": \"...\"}` goes into the error "
        "(`rejected: <reason>`). 409 `not_awaiting_approval` unless the run is "
        "`awaiting_approval`.",
    ),
    ("POST", f"{V1}/runs/{{run_id}}/regenerate"): Operation(
        "Answer the run's message again in a new run (a new branch)", "runs", 202,
        r.RunEnvelope, body=RegenerateBody, errors=(*AUTH_ERRORS, *BODY_ERRORS, 404, 409),
        description="The body may be omitted. Only for the last answer of the selected "
        "branch (409 `not_latest`), with no run active (409 `session_busy`); 422 for an "
        "unknown `pipeline`. The new answer becomes a sibling of the old one.",
    ),
    ("POST", f"{V1}/runs/{{run_id}}/stages/{{index}}/rerun"): Operation(
        "Run one stage of a finished run again (optionally with one model), then the rest",
        "runs", 202, r.RunEnvelope, body=RerunStageBody,
        errors=(*AUTH_ERRORS, *BODY_ERRORS, 404, 409),
        description="The body may be omitted (the agent's own chain). 400 `unknown_model`; "
        "404 for a stage the run lacks; 409 `session_busy` unless the run is finished and "
        "the session idle; 422 when an earlier stage is not completed. The stages from "
        "`index` on keep their results in `versions`; the run gets a new "
        "`assistant_message_id`, a sibling of its previous answer.",
    ),
    ("GET", f"{V1}/usage"): Operation(
        "The caller's tokens and cost, totals and per day, and today's budget", "usage", 200,
        r.UsageAnswer, errors=AUTH_ERRORS,
        description="`budget`: today's (UTC) token and cost budget: limit (null: unlimited), "
        "used, remaining, `resets_at`; `global_exceeded` when the server's budget is spent.",
    ),
    ("GET", f"{V1}/admin/users"): Operation(
        "Every user, oldest first, with role, disabled flag and budgets (admins)", "admin",
        200, r.AdminUserPage, query=ListUsersQuery, errors=(*AUTH_ERRORS, 422),
        description="403 `forbidden` for a caller without the admin role.",
    ),
    ("GET", f"{V1}/admin/users/{{user_id}}"): Operation(
        "A user with today's budget as it applies to them (admins)", "admin", 200,
        r.AdminUserDetail, errors=(*AUTH_ERRORS, 404),
    ),
    ("PATCH", f"{V1}/admin/users/{{user_id}}"): Operation(
        "Change a user's role, disabled flag or budgets (admins)", "admin", 200,
        r.AdminUserEnvelope, body=UserPatch, errors=(*AUTH_ERRORS, *BODY_ERRORS, 404),
        description="`disabled: true` stops the user's tokens, API keys and cookies at once "
        "(401) and closes their WebSockets (4403) and event streams on every web process. "
        "A budget of null follows the server's default; 0 is unlimited. 422 when an admin "
        "would disable or demote themselves.",
    ),
    ("GET", f"{V1}/ws"): Operation(
        "The WebSocket (see docs/websocket.md)", "websocket", 101, None, errors=(400, 403),
        auth=False,
        description="Upgrade to a WebSocket. Auth: the handshake's bearer token or cookie "
        "(403 for a cookie from a foreign Origin), else a first `auth` frame.",
    ),
    ("POST", f"{V1}/api-keys"): Operation(
        "Create an API key (the key is shown in this answer only)", "api-keys", 201,
        ApiKeyCreated, body=CreateKeyBody, errors=(*AUTH_ERRORS, *BODY_ERRORS, 409),
        description="403 for a caller authenticated by an API key; 409 `too_many_api_keys`.",
    ),
    ("GET", f"{V1}/api-keys"): Operation(
        "The caller's API keys (never the keys)", "api-keys", 200, ApiKeyList,
        errors=AUTH_ERRORS,
    ),
    ("DELETE", f"{V1}/api-keys/{{key_id}}"): Operation(
        "Revoke an API key; sockets it opened are closed", "api-keys", 204, None,
        errors=(*AUTH_ERRORS, 404),
    ),
    ("PUT", f"{V1}/webhook"): Operation(
        "Set the caller's webhook (see docs/webhooks.md)", "webhook", 200, WebhookPut,
        body=PutWebhookBody, errors=(*AUTH_ERRORS, *BODY_ERRORS),
        description="`url`: http(s), at most 2048 characters (422 `invalid_request`). Without "
        "`secret` the current secret is kept, or, for a new webhook, one is generated and "
        "answered in `secret` this once.",
    ),
    ("GET", f"{V1}/webhook"): Operation(
        "The caller's webhook (never its secret)", "webhook", 200, WebhookView,
        errors=(*AUTH_ERRORS, 404),
    ),
    ("DELETE", f"{V1}/webhook"): Operation(
        "Remove the caller's webhook", "webhook", 204, None, errors=(*AUTH_ERRORS, 404),
    ),
    ("POST", f"{V1}/webhook/test"): Operation(
        "Send a `webhook.test` delivery now", "webhook", 202, DeliveryEnvelope,
        errors=(*AUTH_ERRORS, 404),
    ),
    ("GET", f"{V1}/webhook/deliveries"): Operation(
        "The delivery log: each delivery with its attempts, newest first", "webhook", 200,
        DeliveryList, query=DeliveriesQuery, errors=(*AUTH_ERRORS, 422),
    ),
    ("GET", f"{V1}/sessions/{{session_id}}/events"): Operation(
        "The session's events as server-sent events (see docs/sse.md)", "sessions", 200,
        "text/event-stream", query=EventsQuery, errors=(*AUTH_ERRORS, 404, 422), streams=True,
        description="Resume with `Last-Event-ID: <epoch>:<seq>` (or `last_event_id`); the "
        "first frame, `event: subscribed`, says `{last_seq, epoch, recovered}`.",
    ),
    ("GET", "/v1/models"): Operation(
        "Pipelines as OpenAI models (see docs/openai.md)", "openai", 200, ModelList,
        errors=(401, 403, 429), error_model=OpenAiErrorBody,
    ),
    ("GET", "/v1/models/{model}"): Operation(
        "One pipeline as an OpenAI model", "openai", 200, ModelInfo,
        errors=(401, 403, 404, 429), error_model=OpenAiErrorBody,
    ),
    ("POST", "/v1/chat/completions"): Operation(
        "Run the pipeline named by `model` (OpenAI-compatible)", "openai", 200, ChatCompletion,
        body=ChatCompletionBody, errors=(400, 401, 403, 404, 409, 413, 415, 429, 500),
        error_model=OpenAiErrorBody,
        description="`stream: true` answers `text/event-stream` chunks in OpenAI's format. "
        "Errors in OpenAI's shape; validation is 400, not 422.",
    ),
    ("GET", f"{V1}/openapi.json"): Operation(
        "This document", "meta", 200, "application/json", auth=False
    ),
    ("GET", "/healthz"): Operation("The process is alive", "operations", 200, r.Health,
                                   auth=False),
    ("GET", "/readyz"): Operation(
        "Redis and the store answer (503 naming the one that does not)", "operations", 200,
        r.Readiness, also=(503,), auth=False,
    ),
    ("GET", "/metrics"): Operation(
        "Prometheus metrics of this process", "operations", 200, "text/plain", auth=False,
        errors=(401, 403, 404),
        description="With `METRICS_TOKEN`: 401 without `Authorization: Bearer <token>`. "
        "With `METRICS_PORT`: served there, 404 here. Neither, in production: 403.",
    ),
}  # fmt: skip

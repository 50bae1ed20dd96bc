"""Names vulture cannot see used: read by a framework, a client of the package, or tests.

Read by vulture only (``make lint``); every entry says who uses it. Route handlers,
pydantic validators, WebSocket commands and ``model_config`` are left out by the
``[tool.vulture]`` settings in pyproject.toml.
"""

from vulture.whitelist_utils import Whitelist

_ = Whitelist()

# The parameters of __aexit__ and of the protocols that mirror a library's signature.
_.exc_type
_.et
_.tb
_.length  # MongoCursor.to_list(length): PyMongo's signature

# Fields of pydantic models: written to storage, or shown in the OpenAPI document and the
# answers the handlers build as plain dicts.
_.access_token
_.token_type
_.expires_in
_.next_before
_.next_before_id
_.sibling_ids  # BranchMessage: answers built by BranchTree.describe
_.sibling_index
_.answer_stage
_.chorus
_.id
_.owned_by
_.logprobs
_.total_tokens
_.output_original  # StageState: the model's text of a gate whose output the user edited
_.system_fingerprint
_.param
_.started_at
_.finished_at
_.content_html
_.latency_ms
_.ttft_ms
_.usage_estimated
_.iat  # a JWT claim PyJWT checks
_.ts  # chorus_client's Event field

# Read by libraries.
_.default_queue_name  # arq's ArqRedis.enqueue_job
_.process  # logging.LoggerAdapter calls it for every record

# Public API of the Store and the client package, and hooks of the test doubles.
_.list_llm_calls
_.backend
_.me
_.follow_run
_.configure  # DemoModelServer: tests change its delay mid-run
_.usage_reports  # DemoStats: tests count usage chunks
_.user_sockets  # SocketLimits: the limits tests read it
_.all_vars  # config_docs: the docs and deployment tests
_.sample  # config_docs.Var: the docs tests
_.streams  # api.operations.Operation: the OpenAPI tests

# The webhook delivery log's fields (stored, answered by GET /api/v1/webhook/deliveries).
_.at
_.duration_ms
_.next_attempt_at
# pydantic-settings hooks (server/config.py): the library calls them, with its signature.
_.settings_customise_sources
_.env_settings
_.dotenv_settings
_.file_secret_settings
_._load_env_vars
_.resets_at  # budget_exceeded errors and BudgetStatus: OpenAPI response fields
_.global_exceeded  # BudgetStatus: an OpenAPI response field
# Store.list_messages: the newest messages of a whole session by time, across branches (the
# API lists a branch through list_message_links and get_messages); kept for the store's
# contract tests and for tools reading a session's raw history.
_.list_messages

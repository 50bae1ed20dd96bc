"""Per-user API keys: long-lived bearer credentials for scripts and OpenAI clients."""

"""Server-sent events: a session's events over plain HTTP, with Last-Event-ID resume."""

"""Session events: the EventBus (publish, replay) and the EventHub (fan-out to sockets)."""

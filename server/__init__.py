"""Chorus web server: REST API, WebSocket, EventHub, stores, auth."""

"""The SSE parser follows the event-stream rules."""

from __future__ import annotations

from chorus_client import ServerSentEvent, SseParser


def _feed(lines: list[str]) -> list[ServerSentEvent]:
    parser = SseParser()
    return [e for line in lines if (e := parser.feed(line)) is not None]


def test_fields_comments_and_multiline_data() -> None:
    events = _feed([": ping", "", "retry: 1000", "event: subscribed", "data: {\"a\":",
                    "data:  1}", "", "id: e:1", "data:x", "", "data: y", ""])  # fmt: skip
    assert events == [
        ServerSentEvent("subscribed", '{"a":\n 1}', None, 1000),
        ServerSentEvent("message", "x", "e:1"),
        ServerSentEvent("message", "y", "e:1"),  # the last id carries on
    ]


def test_an_event_without_data_is_not_dispatched_but_its_id_is_kept() -> None:
    parser = SseParser()
    assert [parser.feed(line) for line in ("id: e:7", "")] == [None, None]
    assert parser.last_id == "e:7"

"""LiveKit's own log records keep no caller's number: rooms and participants of phone calls are masked."""

from __future__ import annotations

import logging

from memory_agent.logs import protect_logs


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s room=%(room)s participant=%(participant)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_a_phone_call_s_room_and_participant_are_masked_in_livekit_s_records():
    logger = logging.getLogger("livekit.agents")
    lines = Lines()
    logger.addHandler(lines)
    try:
        protect_logs()
        logger.warning(
            "closing agent session due to participant disconnect",
            extra={"room": "call-_+14155550134_xYz", "participant": "sip_+14155550134"},
        )
    finally:
        logger.removeHandler(lines)

    assert lines.lines == [
        "closing agent session due to participant disconnect room=call-_+*********34_xYz participant=sip_+*********34"
    ]

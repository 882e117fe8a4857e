"""The voice turn as the settings choose it: the VAD's silence, endpointing, turn detection, preemptive generation."""

from __future__ import annotations

import subprocess
import sys

import pytest
from livekit.plugins import silero

from memory_agent import start_call
from memory_agent.identity import Caller
from memory_agent.scripted_llm import Say, ScriptedLLM
from memory_agent.settings import Settings, VoiceTurn
from memory_agent.worker import tuned_vad

TUNED = {
    "MEMORY_AGENT_VAD_MIN_SILENCE_S": "0.4",
    "MEMORY_AGENT_MIN_ENDPOINTING_DELAY_S": "0.6",
    "MEMORY_AGENT_MAX_ENDPOINTING_DELAY_S": "2.5",
    "MEMORY_AGENT_TURN_DETECTION": "stt",
    "MEMORY_AGENT_PREEMPTIVE_GENERATION": "false",
}


@pytest.fixture(scope="module")
def vad() -> silero.VAD:
    return silero.VAD.load()


def test_the_settings_read_the_voice_turn_from_the_environment(monkeypatch):
    for name, value in TUNED.items():
        monkeypatch.setenv(name, value)

    assert Settings().voice_turn == VoiceTurn(
        vad_min_silence_s=0.4,
        min_endpointing_delay_s=0.6,
        max_endpointing_delay_s=2.5,
        turn_detection="stt",
        preemptive_generation=False,
    )


def test_the_defaults_wait_out_a_pause_but_hear_the_end_sooner_than_livekit():
    turn = Settings().voice_turn

    assert turn.vad_min_silence_s == 0.45  # LiveKit's Silero default: 0.55
    assert (turn.min_endpointing_delay_s, turn.max_endpointing_delay_s) == (0.5, 3.0)
    assert (turn.turn_detection, turn.preemptive_generation) == ("vad", True)


async def test_the_session_is_built_with_the_chosen_turn(repo, vad):
    config = Settings(**TUNED).call_config()
    call = await start_call(repo, Caller.typed("ana"), config, llm=ScriptedLLM([Say("Hi!")]), vad=vad)
    try:
        options = call.session.options
        assert options.endpointing["min_delay"] == 0.6
        assert options.endpointing["max_delay"] == 2.5
        assert options.preemptive_generation["enabled"] is False
        assert options.turn_handling["turn_detection"] == "stt"
    finally:
        await call.finish("caller_hung_up")


def test_the_worker_gives_the_vad_the_chosen_silence(vad):
    tuned = tuned_vad(vad, Settings(MEMORY_AGENT_VAD_MIN_SILENCE_S=0.45))

    assert tuned is vad
    assert vad.min_silence_duration == 0.45


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MEMORY_AGENT_TURN_DETECTION", "eventually"),
        ("MEMORY_AGENT_VAD_MIN_SILENCE_S", "0"),
        ("MEMORY_AGENT_MIN_ENDPOINTING_DELAY_S", "-1"),
    ],
)
def test_a_bad_voice_turn_setting_is_one_clear_line_and_a_failure(tmp_path, variable, value):
    result = subprocess.run(
        [sys.executable, "-m", "memory_agent", "purge", "--db", str(tmp_path / "memory.db")],
        env={"PATH": "/usr/bin:/bin", variable: value},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"invalid setting {variable}" in result.stderr


def test_an_endpointing_delay_whose_least_is_past_its_most_is_refused_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "memory_agent", "purge", "--db", str(tmp_path / "memory.db")],
        env={"PATH": "/usr/bin:/bin", "MEMORY_AGENT_MIN_ENDPOINTING_DELAY_S": "5"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "memory-agent: error: invalid setting MEMORY_AGENT_MAX_ENDPOINTING_DELAY_S: "
        "must be at least MEMORY_AGENT_MIN_ENDPOINTING_DELAY_S (5.0)"
    ]

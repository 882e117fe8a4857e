"""LiveKit's session recording is passed on purpose: off unless the deployment opts in."""

from __future__ import annotations

import pytest
from livekit.agents.testing import fake_job_context

from conftest import scripted_call
from memory_agent.scripted_llm import Say
from memory_agent.settings import Settings


@pytest.mark.parametrize("record", [False, True])
async def test_the_session_records_only_when_asked_even_if_the_project_records(repo, record):
    with fake_job_context() as ctx:
        ctx.job.enable_recording = True  # the LiveKit Cloud project's setting, which `record=` overrides
        call, _llm = await scripted_call(repo, "web:ana", [Say("Welcome!")], record=record)

    recording = call.session.options.recording_options
    assert {recording["audio"], recording["transcript"]} == {record}


def test_recording_is_off_by_default_and_opted_into_by_the_environment(monkeypatch):
    monkeypatch.delenv("MEMORY_AGENT_RECORD", raising=False)
    assert Settings().record is False
    monkeypatch.setenv("MEMORY_AGENT_RECORD", "true")
    assert Settings().record is True

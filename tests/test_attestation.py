"""A number is vouched for only by full STIR/SHAKEN attestation, in the forms carriers send it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from memory_agent.identity import is_attested
from memory_agent.settings import Settings

ATTRIBUTE = "sip.h.attestation"
TELNYX_PAI = '"John Doe" <sip:+18889809750@sip.telnyx.com;verstat={}>'


@pytest.mark.parametrize(
    ("value", "verified"),
    [
        ("A", True),
        ("a", True),
        (" A ", True),
        ("TN-Validation-Passed-A", True),  # Twilio's X-Twilio-VerStat
        (TELNYX_PAI.format("TN-Validation-Passed"), True),  # Telnyx: A-level has no suffix
        (TELNYX_PAI.format("tn-validation-passed"), True),
        ("<sip:+14155550134@carrier.example;user=phone;verstat=TN-Validation-Passed-A>", True),
        ("B", False),
        ("C", False),
        ("TN-Validation-Passed-B", False),
        ("TN-Validation-Passed-C", False),
        (TELNYX_PAI.format("TN-Validation-Passed-B"), False),
        (TELNYX_PAI.format("TN-Validation-Failed"), False),
        (TELNYX_PAI.format("No-TN-Validation"), False),
        ('"A" <sip:+18889809750@sip.telnyx.com>', False),  # a display name is not an attestation
        ("No-TN-Validation", False),
        ("AA", False),
        ("", False),
    ],
)
def test_only_full_attestation_in_the_carriers_forms_vouches_for_a_number(value, verified):
    assert is_attested({ATTRIBUTE: value}, ATTRIBUTE) is verified


def test_no_attribute_or_no_setting_vouches_for_nothing():
    assert not is_attested({}, ATTRIBUTE)
    assert not is_attested(None, ATTRIBUTE)
    assert not is_attested({ATTRIBUTE: "A"}, None)
    assert not is_attested({ATTRIBUTE: None}, ATTRIBUTE)  # type: ignore[dict-item]


def test_the_accepted_values_are_a_setting(monkeypatch):
    monkeypatch.setenv("MEMORY_AGENT_ATTESTATION_ACCEPTED", "A, TN-Validation-Passed-B")
    accepted = Settings().accepted_attestations

    assert accepted == {"A", "TN-Validation-Passed-B"}
    assert is_attested({ATTRIBUTE: TELNYX_PAI.format("TN-Validation-Passed-B")}, ATTRIBUTE, accepted)
    assert not is_attested({ATTRIBUTE: TELNYX_PAI.format("TN-Validation-Passed")}, ATTRIBUTE, accepted)


def test_the_default_accepts_the_full_level_of_twilio_and_telnyx(monkeypatch):
    monkeypatch.delenv("MEMORY_AGENT_ATTESTATION_ACCEPTED", raising=False)
    assert Settings(_env_file=None).accepted_attestations == {"A", "TN-Validation-Passed-A", "TN-Validation-Passed"}


def test_an_empty_list_of_accepted_values_is_refused(monkeypatch):
    monkeypatch.setenv("MEMORY_AGENT_ATTESTATION_ACCEPTED", " , ")
    with pytest.raises(ValidationError, match="at least one value"):
        Settings()

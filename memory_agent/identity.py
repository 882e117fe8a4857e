"""Who is calling: a stable customer key from a LiveKit participant, or None for anonymous."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

import phonenumbers

log = logging.getLogger("memory_agent")

# The console's and fake jobs' participant: never a real customer.
MOCK_IDENTITIES = frozenset({"mock_user", "console", "console_user"})
MAX_IDENTITY = 256
_PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{7,}$")
_DIGIT_RUN = re.compile(r"\d{5,}")
_E164 = re.compile(r"^\+[1-9]\d{5,14}$")
_MEMBER = re.compile(r"#\d+$")  # a household member's key: the number (or identity), "#", the member's rank
# The verification status a carrier may put in a URI of the INVITE (RFC 8588's "verstat"; Telnyx, Bandwidth).
_VERSTAT = re.compile(r"[;?&\s]verstat=([^;>&\s\"]+)", re.IGNORECASE)
# Full (A-level) STIR/SHAKEN attestation as carriers send it: the bare level, Twilio's X-Twilio-VerStat
# value, and the verstat parameter of Telnyx (whose A level has no suffix).
ACCEPTED_ATTESTATIONS = ("A", "TN-Validation-Passed-A", "TN-Validation-Passed")


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the worker knows it: the customer ``key`` (None: serve without memory), the
    ``kind`` of line (``phone``: the phone network brought the call; ``web``: a participant with a token the
    deployment signed), and whether the carrier ``attested`` the number."""

    key: str | None
    kind: Literal["phone", "web"]
    attested: bool = False

    @classmethod
    def phone(cls, number: object, *, attested: bool = False) -> Caller:
        """A caller the phone network brought: keyed by the number in E.164, anonymous without one."""
        key = normalize_phone(number) if isinstance(number, str) else None
        return cls(key=key, kind="phone", attested=attested and key is not None)

    @classmethod
    def web(cls, identity: object) -> Caller:
        """A participant known by its own identity, never by one in the form of a number or a member's key."""
        return cls(key=participant_key(clean_identity(identity)), kind="web")

    @classmethod
    def typed(cls, identity: object) -> Caller:
        """A caller named by a typed identity (the chat, the demo, tests): a number in E.164 is a phone
        caller whose number nobody attested; anything else is a web identity."""
        key = clean_identity(identity)
        return cls(key=key, kind="phone") if key is not None and is_phone_key(key) else cls.web(key)

    @property
    def is_phone(self) -> bool:
        return self.kind == "phone"


def sip_caller(
    identity: object,
    *,
    is_sip: bool,
    attributes: Mapping[str, object] | None = None,
    attestation_attribute: str | None = None,
    accepted: Collection[str] = ACCEPTED_ATTESTATIONS,
) -> Caller:
    """The caller a LiveKit participant is: a SIP participant is a phone caller (attested if the trunk says
    the carrier verified the number), whatever its identity looks like; any other is a web caller."""
    key = caller_key(identity, is_sip=is_sip, attributes=attributes)
    if not is_sip:
        return Caller(key=key, kind="web")
    attested = key is not None and is_attested(attributes, attestation_attribute, accepted)
    return Caller(key=key, kind="phone", attested=attested)


def normalize_phone(raw: str, default_region: str = "US") -> str | None:
    """A full phone number in any common format -> E.164 ('+15551234567'); None if it is not one."""
    text = raw.strip()
    if text.lower().startswith(("sip:", "tel:", "sip_")):
        text = text[4:].split("@", 1)[0]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    # Local-only numbers (no area code) would merge different callers.
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_identity(identity: object) -> str | None:
    """An identity fit to key a customer by, or None (empty, absurd, the console's mock user)."""
    if not isinstance(identity, str):
        return None
    key = identity.strip()
    if not key or len(key) > MAX_IDENTITY or key in MOCK_IDENTITIES or not key.isprintable():
        return None
    return key


def caller_key(identity: object, *, is_sip: bool, attributes: Mapping[str, object] | None = None) -> str | None:
    """The customer key for a LiveKit participant; None means serve without memory.

    SIP callers are keyed by their number in E.164, and only by it: a withheld or unparsable
    number is anonymous, never a shared key. Other participants are keyed by their identity,
    unless it looks like a phone number, which only the phone network may vouch for.
    """
    if is_sip:
        phone = attributes.get("sip.phoneNumber") if attributes is not None else None
        if isinstance(phone, str) and (e164 := normalize_phone(phone)):
            return e164
        return normalize_phone(identity) if isinstance(identity, str) else None
    return participant_key(clean_identity(identity))


def participant_key(key: str | None) -> str | None:
    """A key a participant (not the phone network) may be known by, or None: never one that has the form of
    a phone number (only the network may vouch for one) or of a household member's key (``+14155550134#2``),
    which would read and erase another person's memory. A refusal is logged, in one line."""
    if key is not None and (looks_like_phone(key) or is_member_key(key)):
        log.warning(
            "a participant identity in the form of a phone number or of a household member's key was refused;"
            " the call goes on without memory"
        )
        return None
    return key


def is_member_key(key: str) -> bool:
    """A key of the form the product gives a household's other members (``+14155550134#2``, ``alice#3``)."""
    return _MEMBER.search(key) is not None


def is_attested(
    attributes: Mapping[str, object] | None, attribute: str | None, accepted: Collection[str] = ACCEPTED_ATTESTATIONS
) -> bool:
    """Whether the trunk marked the caller's number as verified by the carrier: the attribute (a SIP
    header the trunk copied) holds one of the ``accepted`` values, in any case, as its whole value or
    as the ``verstat`` parameter within it (``<sip:+1...@carrier;verstat=TN-Validation-Passed>``)."""
    value = attributes.get(attribute) if attributes is not None and attribute is not None else None
    if not isinstance(value, str):
        return False
    found = _VERSTAT.search(value)
    level = (found.group(1) if found else value).strip().casefold()
    return level in {a.strip().casefold() for a in accepted}


def is_phone_key(key: str) -> bool:
    """A key that is a phone number (E.164), which anyone can present: a hint, not proof."""
    return _E164.match(key) is not None


def looks_like_phone(text: str) -> bool:
    return _PHONE_LIKE.match(text.strip()) is not None


def redact(key: str | None) -> str:
    """A key safe for logs: every run of five or more digits keeps only its last two."""
    if key is None:
        return "anonymous"
    masked = _DIGIT_RUN.sub(lambda m: "*" * (len(m.group()) - 2) + m.group()[-2:], key)
    return masked if len(masked) <= 24 else masked[:21] + "..."

"""Who is calling: a stable customer key from a LiveKit participant, or None for anonymous."""

from __future__ import annotations

from collections.abc import Mapping

import phonenumbers

# The console's and fake jobs' participant: never a real customer.
MOCK_IDENTITIES = frozenset({"mock_user", "console", "console_user"})
MAX_IDENTITY = 256


def normalize_phone(raw: str, default_region: str = "US") -> str | None:
    """A phone number in any common format -> E.164 ('+15551234567'), or None if it is not one."""
    text = raw.strip()
    if text.lower().startswith(("sip:", "tel:", "sip_")):
        text = text[4:].split("@", 1)[0]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def caller_key(identity: object, *, is_sip: bool = False, attributes: Mapping[str, object] | None = None) -> str | None:
    """The customer key for a participant; None means serve without memory."""
    if is_sip and attributes is not None:
        phone = attributes.get("sip.phoneNumber")
        if isinstance(phone, str) and (e164 := normalize_phone(phone)):
            return e164
    if not isinstance(identity, str):
        return None
    key = identity.strip()
    if not key or len(key) > MAX_IDENTITY or key in MOCK_IDENTITIES or not key.isprintable():
        return None
    if is_sip and (e164 := normalize_phone(key)):
        return e164
    return key


def redact(key: str | None) -> str:
    """A key safe for logs: phone numbers keep only their last two digits."""
    if key is None:
        return "anonymous"
    if key.startswith("+") and key[1:].isdigit():
        return "+" + "*" * (len(key) - 3) + key[-2:]
    return key if len(key) <= 24 else key[:21] + "..."

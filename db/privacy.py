"""The erasure audit's key (erasures and identity attempts are recorded by a keyed hash of the number, never
the number), and the one check of every write of a call: whether its caller was erased since it began.

A call (running, or spooled) whose caller was erased after it began must not be written: that would bring
them back. Every write of a call (the end-of-call write, each checkpoint, the spool's replay) on both
backends checks ``db.statements.calls.ERASED_SINCE`` with ``erased_since_values``: an erasure of the
call's profile, or of everything on the number it came from. (Another person of the household, erased
alone, takes nothing of the others' calls.)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from db.schema.models import CallSnapshot


def erased_since_values(key: AuditKey, snap: CallSnapshot) -> dict[str, object] | None:
    """The values of ``db.statements.calls.ERASED_SINCE`` for ``snap``'s caller (since when, and the keyed
    subjects of the identity and the number); None when no erasure can apply (no key yet means no erasure
    ever; an anonymous call with no number)."""
    if not (snap.identity or snap.household) or key.existing() is None:
        return None
    identity = key.subject(snap.identity) if snap.identity else None
    number = key.subject(snap.household) if snap.household else None
    return {"since": snap.started_at or "", "identity": identity, "number": number}


class AuditKey:
    """The key of the erasure audit's hashes: a file of random bytes, readable by its owner only.

    Read once it exists (blocking: call it from a thread, or once at open), then kept.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: bytes | None = None

    def existing(self) -> bytes | None:
        """The key, or None while no erasure has made one."""
        if self._key is None:
            try:
                self._key = self.path.read_bytes()
            except FileNotFoundError:
                return None
        return self._key

    def load(self) -> bytes:
        """The key, made now if no erasure has made one yet."""
        if self._key is None:
            self._key = _audit_key(self.path)
        return self._key

    def subject(self, identity: str) -> str:
        """A keyed hash of an identity: the same caller gives the same hash, no one can reverse it."""
        return hmac.new(self.load(), identity.encode("utf-8"), hashlib.sha256).hexdigest()


def _audit_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    # Written aside, then linked into place: whoever reads the key finds it whole, and the first one made stays.
    draft = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
            out.flush()
            os.fsync(out.fileno())
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_bytes()

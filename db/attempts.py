"""Names tried on a number that matched none of its profiles: counted to bound guessing, and kept for the owner.

Nothing personal is kept: when, the call, the outcome, and a keyed hash of the number (with the
erasure audit's key), never the name that was said.
"""

from __future__ import annotations

from typing import Literal

# ``wrong_name``: compared with the number's profiles, and matched none; ``refused``: not compared at
# all, because the number had used up its tries (the call went on without memory).
Outcome = Literal["wrong_name", "refused"]

# ``?`` placeholders, as both backends' ``read`` take them.
COUNT_SQL = "SELECT count(*) FROM identity_attempts WHERE subject = ? AND outcome = 'wrong_name' AND attempted_at >= ?"
INSERT_SQL = "INSERT INTO identity_attempts (attempted_at, subject, call_id, outcome) VALUES (?, ?, ?, ?)"

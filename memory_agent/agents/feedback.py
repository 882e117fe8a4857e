"""The Feedback agent: a 1-5 rating, a comment, optionally an email for the receipt; then goodbye."""

from __future__ import annotations

import unicodedata
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from livekit.agents import RunContext, ToolError, function_tool, llm

from memory_agent.agents.base import BellaVistaAgent, instructions
from memory_agent.memory import as_data
from memory_agent.state import Userdata

MAX_COMMENT = 1000

INSTRUCTIONS = """\
The order is done. Ask the caller to rate their experience from 1 to 5, with any comment, and \
save it. Offer to email the receipt unless we have their email. Then thank them and say goodbye."""

PLACED = "Their order was just placed: {summary} First tell them it will be ready {when}."


class Feedback(BellaVistaAgent):
    carried_items = 2  # the order's exchange is over (its summary is in the instructions): the last words do
    step_tools = frozenset({"take_message", "save_email"})

    def __init__(self, ud: Userdata, *, chat_ctx: llm.ChatContext | None = None) -> None:
        text = instructions(ud, INSTRUCTIONS, memory=False)
        if ud.order.placed:
            text += "\n\n" + PLACED.format(summary=as_data(ud.order.spoken_summary), when=ready_words(ud))
        super().__init__(instructions=text, chat_ctx=chat_ctx)

    async def on_enter(self) -> None:
        self.session.generate_reply()

    async def on_exit(self) -> None:
        self.userdata.journal.checkpoint()

    def not_now(self) -> set[str]:
        ud = self.userdata
        hidden = set(super().not_now())
        if ud.order.email or (ud.memory is not None and ud.memory.email):
            hidden.add("save_email")  # on file: nothing to ask
        return hidden

    @function_tool
    async def record_feedback(self, context: RunContext[Userdata], rating: int, comment: str = "") -> str:
        """Save the caller's rating and comment.

        Args:
            rating: 1 (bad) to 5 (excellent).
            comment: In their words; empty if none.
        """
        if not 1 <= rating <= 5:
            raise ToolError("The rating must be a whole number from 1 to 5; ask the caller again.")
        text = " ".join("".join(ch for ch in comment if unicodedata.category(ch)[0] != "C" or ch == "\n").split())
        if len(text) > MAX_COMMENT:
            raise ToolError(f"Summarize the comment in at most {MAX_COMMENT} characters.")
        ud = context.userdata
        ud.order.feedback_rating = rating
        ud.order.feedback_comment = text
        ud.journal.checkpoint()
        return "Feedback saved." + (" Apologize sincerely." if rating <= 2 else " Thank them.")

    @function_tool
    async def save_email(self, context: RunContext[Userdata], email: str) -> str:
        """Save the caller's email for the receipt, once they spelled it.

        Args:
            email: e.g. "maria@example.com".
        """
        if context.userdata.identity is None:
            raise ToolError(
                "We cannot keep an email for a caller we have not identified: tell them the receipt cannot be"
                " emailed on this call."
            )
        try:
            normalized = validate_email(email.strip(), check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ToolError(f"That is not a valid email address ({exc}); ask the caller to spell it again.") from None
        ud = context.userdata
        ud.order.email = normalized
        ud.journal.checkpoint()
        return f"Saved {normalized}; the receipt will go there."


def ready_words(ud: Userdata) -> str:
    """When the placed order will be ready, as the caller hears it: "at 7:35 PM today, in about 25 minutes"."""
    if ud.order.ready_at is None:
        return "soon"
    ready, now = datetime.fromisoformat(ud.order.ready_at), ud.clock()
    when = f"at {ud.place.spoken(ready, now=now)}"
    minutes = round((ready - now).total_seconds() / 60)
    return when + (f", in about {minutes} minutes" if 0 < minutes <= 120 else "")

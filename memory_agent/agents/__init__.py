"""The agent chain: Greeter -> OrderTaker -> Feedback."""

from memory_agent.agents.feedback import Feedback
from memory_agent.agents.greeter import Greeter
from memory_agent.agents.order_taker import OrderTaker

__all__ = ["Feedback", "Greeter", "OrderTaker"]

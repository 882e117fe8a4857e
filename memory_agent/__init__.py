"""memory-agent: Bella Vista's phone ordering agent that remembers every caller."""

from memory_agent.call import Call, start_call

__all__ = ["Call", "start_call"]

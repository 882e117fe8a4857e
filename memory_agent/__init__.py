"""memory-agent: a restaurant's phone ordering agent that remembers every caller.

``start_call``, ``Call`` and ``CallConfig`` load LiveKit on first use, so the settings, menu and identity modules
stay light for the owners' scripts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memory_agent.call import Call, CallConfig, start_call

__all__ = ["Call", "CallConfig", "start_call"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from memory_agent import call

        return getattr(call, name)
    raise AttributeError(f"module 'memory_agent' has no attribute {name!r}")

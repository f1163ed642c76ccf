"""Chat messages: telling a conversation from plain text, rendering messages as one text, and
reading an Anthropic HH transcript as messages.

A leaf module (nothing from prefaudit is imported here), so that the loaders, the validators
and the reference model can all share these helpers without importing one another.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

HH_ASSISTANT = "\n\nAssistant:"
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")


def hh_messages(prompt: str) -> list[dict[str, str]]:
    """The turns of an HH transcript prefix as chat messages."""
    parts = _HH_TURN.split(prompt)
    # Text before the first marker (rare) is kept as a system message rather than dropped.
    messages = [{"role": "system", "content": parts[0].strip()}] if parts[0].strip() else []
    for role, content in zip(parts[1::2], parts[2::2], strict=True):
        messages.append(
            {"role": "user" if role == "Human" else "assistant", "content": content.strip()}
        )
    return messages


def is_conversation(value: Any) -> bool:
    """Whether ``value`` is a non-empty list of chat messages (dicts with a ``role``), as a
    ``prompt_messages`` cell holds them (a numpy array after a Parquet round trip)."""
    return (
        isinstance(value, (list, tuple, np.ndarray))
        and len(value) > 0
        and all(isinstance(m, dict) and "role" in m for m in value)
    )


def render_messages(messages: list[dict[str, str]], roles: bool = True) -> str:
    """Messages as one text: a single message is its content, several are 'role: content' blocks."""
    if len(messages) == 1 or not roles:
        return "\n\n".join(m["content"] for m in messages)
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)

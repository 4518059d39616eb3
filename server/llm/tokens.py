"""Token estimates that never count fewer tokens than the provider will (SPEC 10.5, 11.1).

The estimate counts UTF-8 bytes. Every tokenizer the providers use is byte-level BPE (OpenAI's
cl100k and o200k, Llama 3, Qwen, GPT-OSS) or falls back to bytes (SentencePiece), so no token
is shorter than one byte and a text never has more tokens than bytes. Counting characters is
not safe: a rare Hangul syllable or an emoji is two to four tokens on its own, and common
Korean text is more tokens than characters in cl100k. The bound is loose (English and code run
about four bytes per token, Korean about three to four), which costs context and reservation
headroom, never an undercount: a call that reports its usage is settled to the provider's
figures, and only calls without them keep the estimate.

Besides the text, each message costs its role and separators, and the reply is primed with a
few tokens; MESSAGE_OVERHEAD_TOKENS and REPLY_PRIMING_TOKENS cover what OpenAI's format
charges (3 per message, 3 for the reply) with a token to spare.
"""

from __future__ import annotations

from collections.abc import Iterable

from llm.providers.base import ChatMessage

MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMING_TOKENS = 3


def text_tokens(text: str) -> int:
    """At least as many as any byte-level tokenizer gives `text`."""
    return len(text.encode("utf-8", "surrogatepass"))


def message_tokens(message: ChatMessage) -> int:
    return text_tokens(message.content) + MESSAGE_OVERHEAD_TOKENS


def prompt_tokens(messages: Iterable[ChatMessage]) -> int:
    """At least the prompt tokens the provider will count for `messages`."""
    return sum(message_tokens(m) for m in messages) + REPLY_PRIMING_TOKENS


def completion_tokens(text: str) -> int:
    """At least the completion tokens of a reply that said `text`."""
    return text_tokens(text)

"""The one exception every wire parser raises on bad input."""

from __future__ import annotations


class MalformedError(ValueError):
    """A header could not be parsed.

    ``reason`` is a short machine-friendly label ("truncated", "bad_checksum",
    "bad_length", "bad_option", "bad_version", "bad_header_length", ...): the
    native stack counts dropped frames by it.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

"""A word diff of the model's answer against the correction, as escaped HTML."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

TOKENS = re.compile(r"\s+|\w+|[^\w\s]")
MAX_TOKENS = 5000  # a longer pair is shown without a diff (the matcher is quadratic)


def word_diff(answer: str, correction: str) -> SafeString:
    """``<del>`` for what the correction removed, ``<ins>`` for what it added; every piece of
    text escaped, so markup in either is shown, never run."""
    old, new = TOKENS.findall(answer or ""), TOKENS.findall(correction or "")
    if len(old) + len(new) > MAX_TOKENS:
        return format_html('<span class="cur-diff-skipped">too long to compare</span>')
    parts: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(("span", "".join(old[i1:i2])))
            continue
        if i2 > i1:
            parts.append(("del", "".join(old[i1:i2])))
        if j2 > j1:
            parts.append(("ins", "".join(new[j1:j2])))
    return format_html_join("", "<{0}>{1}</{0}>", parts)

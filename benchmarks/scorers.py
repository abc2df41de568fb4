"""Quality scorers: each turns (answer, reference) into a score from 0 to 1, or None.

None means "not applicable" (no reference for a scorer that needs one) and is left out of the
mean. The registry is the extension point for plugins: the ``plugins`` app (or any code at
start-up) calls ``register_scorer`` with a name, a label and a function; a run names the scorers
it wants, and a scorer that raises is recorded as None with the error, never failing the run.
"""

from __future__ import annotations

import json
import logging
import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from batchserver.errors import Invalid
from plugins import services as plugin_services

logger = logging.getLogger(__name__)

# (answer, reference, options) -> score in [0, 1] or None. ``options`` are the run's scorer
# options (e.g. {"regex": "..."}).
ScoreFunction = Callable[[str, str | None, dict[str, Any]], Any]

DEFAULT_REGEX = r"(?<!\w){reference}(?!\w)"
DEFAULT_SCORERS = ("exact_match", "contains", "regex", "rouge_l")
# The pseudo-scorer whose scores come from the enabled rating plugins.
PLUGIN_RATINGS = "plugins"


@dataclass(frozen=True)
class Scorer:
    """A named quality measure; ``needs_reference`` scorers give None without a reference."""

    name: str
    label: str
    function: ScoreFunction
    needs_reference: bool = True
    description: str = ""

    def score(self, answer: str, reference: str | None, options: dict[str, Any]) -> Any:
        if self.needs_reference and reference is None:
            return None
        return self.function(answer, reference, options)


_registry: dict[str, Scorer] = {}


def register_scorer(scorer: Scorer) -> None:
    """Add (or replace) a scorer: the extension point a plugin uses to add its own."""
    _registry[scorer.name] = scorer


def all_scorers() -> dict[str, Scorer]:
    """Every registered scorer by name, built-ins first."""
    return dict(_registry)


def get_scorers(names: list[str]) -> list[Scorer]:
    """The scorers ``names`` asks for; Invalid naming the unknown one."""
    unknown = [n for n in names if n not in _registry]
    if unknown:
        raise Invalid(
            f"Unknown scorer '{unknown[0]}'; known: {', '.join(_registry)}.",
            param="scorers",
            code="unknown_scorer",
        )
    return [_registry[n] for n in names]


def normalise(text: str) -> str:
    """Lower case, accents and punctuation at the ends dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = " ".join(text.split())
    return text.strip(string.punctuation + " ")


def exact_match(answer: str, reference: str | None, options: dict[str, Any]) -> float:
    return float(normalise(answer) == normalise(reference or ""))


def contains(answer: str, reference: str | None, options: dict[str, Any]) -> float:
    wanted = normalise(reference or "")
    return float(bool(wanted) and wanted in normalise(answer))


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def check_regex(pattern: str) -> None:
    """Invalid if the run's pattern does not compile (``{reference}`` is filled in per prompt)."""
    try:
        re.compile(pattern.replace("{reference}", "x"))
    except re.error as exc:
        raise Invalid(
            f"The regex {pattern!r} does not compile: {exc}.", param="regex", code="invalid_regex"
        ) from exc


def regex(answer: str, reference: str | None, options: dict[str, Any]) -> float | None:
    """The run's pattern (default: the reference as a whole word) found in the answer.

    ``{reference}`` in the pattern stands for the escaped reference; a pattern without it
    does not need a reference.
    """
    pattern = options.get("regex") or DEFAULT_REGEX
    if "{reference}" in pattern:
        if reference is None:
            return None
        pattern = pattern.replace("{reference}", re.escape(reference.strip()))
    return float(_compiled(pattern).search(answer) is not None)


def valid_json(answer: str, reference: str | None, options: dict[str, Any]) -> float:
    """1 if the answer (a fenced ```json block is unwrapped) parses as JSON."""
    text = answer.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        json.loads(text)
    except ValueError:
        return 0.0
    return 1.0


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(answer: str, reference: str | None, options: dict[str, Any]) -> float:
    """ROUGE-L F1 (longest common subsequence of words) through ``rouge-score``."""
    return float(_rouge().score(reference or "", answer)["rougeL"].fmeasure)


for _scorer in (
    Scorer("exact_match", "Exact match", exact_match, description="equal after normalising"),
    Scorer("contains", "Contains", contains, description="the reference inside the answer"),
    Scorer("regex", "Regex", regex, False, "pattern found; default: the reference as a word"),
    Scorer("valid_json", "Valid JSON", valid_json, needs_reference=False),
    Scorer("rouge_l", "ROUGE-L", rouge_l, description="ROUGE-L F1 against the reference"),
):
    register_scorer(_scorer)


def plugin_ratings(answer: str, reference: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """Every enabled rating plugin's scores (0..1), named ``<plugin>:<score>``.

    The plugins service guards each call (time budget, errors counted): a rater that fails
    gives no score here, never a failed run.
    """
    prompt = options.get("_prompt", "")
    return {
        f"{s.plugin}:{s.name}": s.value
        for s in plugin_services.rate(answer, prompt=prompt, reference=reference)
    }


register_scorer(
    Scorer(
        PLUGIN_RATINGS,
        "Plugin ratings",
        plugin_ratings,
        needs_reference=False,
        description="the scores of every enabled rating plugin (e.g. Quality Rater)",
    )
)


def score_answer(
    scorers: list[Scorer], answer: str, reference: str | None, options: dict[str, Any]
) -> dict[str, float | None]:
    """Every scorer's score for one answer; a scorer that raises gives None (and is logged).

    A scorer may answer several scores at once (a dict, e.g. the plugin ratings): each becomes
    a column of its own.
    """
    scores: dict[str, float | None] = {}
    for scorer in scorers:
        try:
            value = scorer.score(answer, reference, options)
        except Exception:  # a plugin's scorer must not fail the run
            logger.exception("scorer %s failed", scorer.name)
            value = None
        values = value if isinstance(value, dict) else {scorer.name: value}
        for name, one in values.items():
            scores[name] = None if one is None else round(float(one), 4)
    return scores

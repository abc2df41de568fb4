"""Scorers against answers whose scores are known, and the registry plugins extend."""

from __future__ import annotations

import pytest

from batchserver.errors import Invalid
from benchmarks import scorers
from benchmarks.scorers import Scorer


def score(name: str, answer: str, reference: str | None, **options):
    return scorers.all_scorers()[name].score(answer, reference, options)


@pytest.mark.parametrize(
    ("answer", "reference", "expected"),
    [
        ("Paris", "Paris", 1.0),
        ("  paris. ", "Paris", 1.0),
        ("Brasilia", "Brasília", 1.0),
        ("The capital is Paris.", "Paris", 0.0),
        ("5", "5", 1.0),
        ("15", "5", 0.0),
    ],
)
def test_exact_match_after_normalising(answer, reference, expected):
    assert score("exact_match", answer, reference) == expected


def test_contains_finds_the_reference_inside_the_answer():
    assert score("contains", "The capital is PARIS.", "Paris") == 1.0
    assert score("contains", "It is Lyon.", "Paris") == 0.0
    assert score("contains", "anything", "") == 0.0


def test_regex_default_is_the_reference_as_a_whole_word():
    assert score("regex", "2 + 3 = 5.", "5") == 1.0
    assert score("regex", "The answer is 15", "5") == 0.0
    assert score("regex", "x = 3.5 exactly", "3.5") == 1.0
    assert score("regex", "x = 345", "3.5") == 0.0  # the dot is escaped


def test_regex_with_the_runs_own_pattern():
    assert score("regex", "Answer: B", None, regex=r"^Answer: [A-D]$") == 1.0
    assert score("regex", "I think B", None, regex=r"^Answer: [A-D]$") == 0.0
    assert score("regex", "no reference here", None) is None  # default pattern needs one


def test_a_pattern_that_does_not_compile_is_refused_clearly():
    with pytest.raises(Invalid, match="does not compile"):
        scorers.check_regex("([unclosed")


def test_valid_json_accepts_json_and_a_fenced_block():
    assert score("valid_json", '{"a": 1}', None) == 1.0
    assert score("valid_json", '```json\n{"a": [1, 2]}\n```', None) == 1.0
    assert score("valid_json", "{'a': 1}", None) == 0.0
    assert score("valid_json", 'Sure! {"a": 1}', None) == 0.0


def test_rouge_l_is_the_f1_of_the_longest_common_subsequence():
    assert score("rouge_l", "the cat sat on the mat", "the cat sat on the mat") == 1.0
    # LCS "the cat sat" = 3 words: precision 3/3, recall 3/6, F1 = 2/3
    assert score("rouge_l", "the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert score("rouge_l", "dogs bark", "the cat sat") == 0.0


def test_scorers_that_need_a_reference_give_none_without_one():
    for name in ("exact_match", "contains", "rouge_l"):
        assert score(name, "anything", None) is None


def test_a_registered_scorer_is_used_and_one_that_raises_gives_none(monkeypatch):
    monkeypatch.setattr(scorers, "_registry", dict(scorers._registry))
    scorers.register_scorer(Scorer("length", "Short", lambda a, r, o: float(len(a) < 5), False))
    scorers.register_scorer(Scorer("broken", "Broken", lambda a, r, o: 1 / 0, False))
    found = scorers.get_scorers(["length", "broken", "exact_match"])
    assert scorers.score_answer(found, "abc", "abc", {}) == {
        "length": 1.0,
        "broken": None,
        "exact_match": 1.0,
    }


def test_an_unknown_scorer_is_refused_by_name():
    with pytest.raises(Invalid, match="Unknown scorer 'bleu'"):
        scorers.get_scorers(["exact_match", "bleu"])


def test_an_enabled_rating_plugin_adds_its_scores_as_columns(db):
    from benchmarks.scorers import PLUGIN_RATINGS, get_scorers, score_answer
    from plugins import testing
    from plugins.types import Score

    def rate(answer, prompt, reference):
        return [Score(name="short", value=1.0 if len(answer) < 10 else 0.0)]

    with testing.installed(testing.make_plugin("lengthy", hooks={"rate": rate})):
        scores = score_answer(get_scorers(["exact_match", PLUGIN_RATINGS]), "Paris", "Paris", {})
    assert scores == {"exact_match": 1.0, "lengthy:short": 1.0}


def test_without_rating_plugins_the_plugin_scorer_adds_nothing(db):
    from benchmarks.scorers import PLUGIN_RATINGS, get_scorers, score_answer

    assert score_answer(get_scorers([PLUGIN_RATINGS]), "Paris", None, {}) == {}

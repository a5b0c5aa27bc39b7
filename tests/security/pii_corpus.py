"""The labelled PII corpus and its scoring (shared by the corpus test and bench/pii_bench.py).

Each line of `pii_corpus_<split>.jsonl` is `{"text": ..., "pii": [[kind, substring], ...]}`
with the substrings in order of appearance; a sample without `pii` is a hard negative.
The held-out split was written before the rules were tuned and is never tuned against.

A finding counts only if its kind and its exact span match a labelled substring: a
span that is too short or too long is one false positive and one miss.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
SPLITS = ("dev", "heldout")

Span = tuple[str, int, int]


@dataclass(frozen=True)
class Sample:
    text: str
    expected: tuple[Span, ...]


def load(split: str) -> list[Sample]:
    """The samples of one split, with the labelled substrings turned into spans."""
    samples = []
    for line in (HERE / f"pii_corpus_{split}.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        text, spans, pos = record["text"], [], 0
        for kind, sub in record["pii"]:
            start = text.index(sub, pos)
            spans.append((kind, start, start + len(sub)))
            pos = start + len(sub)
        samples.append(Sample(text, tuple(spans)))
    return samples


@dataclass(frozen=True)
class Score:
    kind: str
    expected: int
    found: int
    correct: int

    @property
    def precision(self) -> float:
        return self.correct / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.expected if self.expected else 1.0


def score(
    samples: Iterable[Sample], find: Callable[[str], Iterable[Span]]
) -> tuple[dict[str, Score], list[tuple[str, set[Span], set[Span]]]]:
    """Per-kind scores of `find` (text -> (kind, start, end) spans), and the mistakes."""
    expected: Counter[str] = Counter()
    found: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    mistakes = []
    for sample in samples:
        want, got = set(sample.expected), set(find(sample.text))
        expected.update(k for k, _, _ in want)
        found.update(k for k, _, _ in got)
        correct.update(k for k, _, _ in want & got)
        if want != got:
            mistakes.append((sample.text, want - got, got - want))
    kinds = sorted(expected | found)
    return {k: Score(k, expected[k], found[k], correct[k]) for k in kinds}, mistakes


def table(scores: dict[str, Score]) -> list[str]:
    """The scores as markdown rows."""
    lines = [
        "| kind | labelled | found | correct | precision | recall |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in scores.values():
        lines.append(
            f"| {s.kind} | {s.expected} | {s.found} | {s.correct} "
            f"| {s.precision:.3f} | {s.recall:.3f} |"
        )
    return lines

"""PII redaction benchmark: precision and recall on the labelled corpus, and speed.

Usage:
    python bench/pii_bench.py [--before path/to/old_pii.py] [--quick] [--out FILE.json]

Scores every kind on both corpus splits (`tests/security/pii_corpus_*.jsonl`: "dev",
tuned against, and "heldout", written first and never tuned against), then times
`Redactor.redact` on three texts (typical chat, prose without numbers, PII-dense) and
`redact_value` / `redact_message` on a JSON value and a message, in microseconds per KB
of text (medians of interleaved runs). `--before` loads an earlier version of
`langmem_prod/security/pii.py` (`git show main:langmem_prod/security/pii.py > old.py`),
scores it on the same corpus and times it in the same run, interleaved.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from _timing import compare, publish

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.messages import AIMessage

from langmem_prod.security import pii
from tests.security.pii_corpus import SPLITS, load, score, table

TYPICAL_LINES = [
    "Hi, I ordered the blue kettle last week (order 48213) and it still has not arrived.",
    "Sorry to hear that! Could you confirm the delivery address and the e-mail on the order?",
    "Sure, it is ada.lovelace@example.com and the flat is at 12 Baker Street, second floor.",
    "Thanks. The parcel left our warehouse on 2026-11-21 and the carrier scanned it at 14:32.",
    "It was supposed to arrive on Tuesday. I paid 49.99 EUR plus 4.50 for express shipping.",
    "I see a failed delivery attempt; the driver tried to call +44 20 7946 0958 twice.",
    "That is my old number, please use 07700 900123 from now on.",
    "Noted. Would you like a refund to the card ending in 1111 or a new delivery?",
    "A new delivery please, before Friday if possible, I am away from the 28th.",
    "Je préfère être contacté par courriel, merci, et pas avant 9 heures du matin.",
    "Der Kundendienst ist von Montag bis Freitag zwischen 8 und 18 Uhr erreichbar.",
    "Our records show version 3.2.1 of the app on your phone; updating may fix the tracking.",
    "Great, thank you for your help, have a nice day!",
]
DENSE_LINES = [
    "Mail ada@example.com, call +44 20 7946 0958 or 020 7946 0958, SSN 219-45-6789.",
    "Card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, from 10.0.0.1 and ::1.",
]


def text_of(lines: list[str], kb: int) -> str:
    """The lines repeated to about `kb` KB."""
    text, i = "", 0
    while len(text.encode()) < kb * 1024:
        text += lines[i % len(lines)] + "\n"
        i += 1
    return text


def prose(lines: list[str]) -> list[str]:
    """The lines without digits, @ or +: nothing a PII rule could start on."""
    return ["".join(ch for ch in line if not (ch.isdigit() or ch in "@+")) for line in lines]


def load_module(path: str) -> Any:
    """Another version of `langmem_prod/security/pii.py` (e.g. `git show main:...`)."""
    spec = importlib.util.spec_from_file_location("pii_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pii_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def corpus_report(name: str, redactor: Any, splits: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Per-kind precision and recall of one redactor on each split, and on all of them."""

    def find(text: str) -> list[tuple[str, int, int]]:
        return [(f.kind, f.start, f.end) for f in redactor.find(text)]

    results: dict[str, Any] = {}
    lines: list[str] = []
    for split in [*splits, "all"] if len(splits) > 1 else splits:
        samples = [s for n in splits for s in load(n)] if split == "all" else load(split)
        scores, _ = score(samples, find)
        results[split] = {
            k: {"precision": s.precision, "recall": s.recall, "labelled": s.expected}
            for k, s in scores.items()
        }
        lines += [f"## {name}, corpus {split} ({len(samples)} samples)", "", *table(scores), ""]
    return results, lines


def workloads(kb: int) -> tuple[dict[str, Any], dict[str, float]]:
    """The inputs timed (texts, a JSON value, a message) and their sizes in KB."""
    texts = {
        "typical chat": text_of(TYPICAL_LINES, kb),
        "prose, no digits": text_of(prose(TYPICAL_LINES), kb),
        "PII-dense": text_of(DENSE_LINES, kb),
    }
    lines = text_of(TYPICAL_LINES, kb).splitlines()
    value = {"notes": [{"text": line, "tags": ["a", "b"], "n": i} for i, line in enumerate(lines)]}
    message = AIMessage([{"type": "text", "text": t} for t in lines], id="m1")
    inputs: dict[str, Any] = {**texts, "redact_value (JSON)": value, "redact_message": message}
    sizes = {name: len(text.encode()) / 1024 for name, text in texts.items()}
    sizes["redact_value (JSON)"] = len(str(value).encode()) / 1024
    sizes["redact_message"] = sizes["typical chat"]
    return inputs, sizes


def call(redactor: Any, name: str, data: Any) -> Any:
    if name == "redact_value (JSON)":
        return redactor.redact_value(data)
    if name == "redact_message":
        return redactor.redact_message(data)
    return redactor.redact(data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="an earlier pii.py, scored and timed in the same run")
    parser.add_argument("--splits", default=",".join(SPLITS), help="corpus splits to score")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="bench/results/pii_bench.json")
    args = parser.parse_args()
    redactors = {"now": pii.Redactor()}
    if args.before:
        redactors["before"] = load_module(args.before).Redactor()
    splits = [name for name in args.splits.split(",") if name]
    results: dict[str, Any] = {"before": args.before}
    lines = ["# PII redaction", ""]
    for name, redactor in redactors.items():
        results[f"corpus_{name}"], report = corpus_report(name, redactor, splits)
        lines += report
    inputs, sizes = workloads(4 if args.quick else 16)
    cases = {
        f"{input_name}|{name}": (lambda r=redactor, i=input_name, d=data: call(r, i, d))
        for input_name, data in inputs.items()
        for name, redactor in redactors.items()
    }
    timings = compare(cases, n=20 if args.quick else 60, repeats=3 if args.quick else 5)
    us = {case: timings[case] * 1e6 / sizes[case.split("|")[0]] for case in cases}
    results["us_per_kb"] = us
    header = "| input | now µs/KB |" + (" before µs/KB | now / before |" if args.before else "")
    lines += ["## speed (µs per KB, medians of interleaved runs)", "", header]
    lines.append("|---|---:|" + ("---:|---:|" if args.before else ""))
    for input_name in inputs:
        now = us[f"{input_name}|now"]
        row = f"| {input_name} | {now:,.0f} |"
        if args.before:
            before = us[f"{input_name}|before"]
            row += f" {before:,.0f} | {now / before:.2f}x |"
        lines.append(row)
    publish(args.out, results, lines)


if __name__ == "__main__":
    main()

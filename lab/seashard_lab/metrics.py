"""The servers' Prometheus text, parsed with prometheus_client's own parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[dict[str, str], float]


@dataclass
class Metrics:
    """Prometheus text as sample name -> [(labels, value)]."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Metrics:
        out: dict[str, list[Sample]] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
        return cls(out)

    def per_shard(self, name: str, **match: str) -> dict[int, float]:
        """Sum of ``name`` per shard (over its other labels, or those matching ``match``)."""
        totals: dict[int, float] = {}
        for labels, value in self.samples.get(name, []):
            if any(labels.get(k) != v for k, v in match.items()):
                continue
            shard = int(labels.get("shard", "0"))
            totals[shard] = totals.get(shard, 0.0) + value
        return totals

    def total(self, name: str, **match: str) -> float:
        return sum(self.per_shard(name, **match).values())

    def by_label(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for labels, value in self.samples.get(name, []):
            out[labels.get(label, "")] = out.get(labels.get(label, ""), 0.0) + value
        return out

    def shard_info(self) -> dict[int, dict[str, str]]:
        return {int(lb["shard"]): lb for lb, _ in self.samples.get("seashard_shard_info", [])}


def delta(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in sorted(set(after) | set(before))}


def shares(counts: dict[Any, int | float]) -> dict[Any, float]:
    total = sum(counts.values())
    return {k: (v / total if total else 0.0) for k, v in counts.items()}

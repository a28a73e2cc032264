"""A resumable store of timed generations: one JSON line per finished generate call.

A record is keyed by its method (say "ArS", "SpS[lookup:3]", "K=4") and its items,
the (example, sample) pairs that call generated, so a config with more examples
or samples finds the records already there and adds the rest.
"""
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from specjax.decoding.stats import Stats


def _key(items) -> tuple:
  return tuple(tuple(x) for x in items)


class Records:
  """The records in `path` (JSONL), appended to as generations finish."""

  def __init__(self, path: str):
    self.path, self.rows = path, {}
    if os.path.exists(path):
      with open(path) as f:
        for line in f:
          if line.strip():
            try:
              r = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill: redone
              continue
            self.rows[(r["method"], _key(r["items"]))] = r

  def get(self, method: str, items) -> Optional[dict]:
    return self.rows.get((method, _key(items)))

  def add(self, record: dict) -> None:
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    self.rows[(record["method"], _key(record["items"]))] = record


def record(method: str, items, out, time, texts: bool = True) -> dict:
  """The record of one timed call (`time`: a `perf.GenerationTime`): its seconds, in parts,
  lengths, acceptance histogram, target calls (and texts)."""
  r = dict(method=method, items=items, seconds=time.seconds,
           prefill_seconds=time.prefill_seconds, loop_seconds=time.loop_seconds,
           prefill_tokens=time.prefill_tokens, compile_seconds=time.compile_seconds,
           lengths=np.asarray(out.lengths).tolist(),
           histogram=out.stats.accepted_histogram.tolist(),
           target_calls=int(out.stats.target_calls), drafted=out.stats.drafted,
           rejected=out.stats.rejected)
  return dict(r, texts=out.texts) if texts else r


def summed_stats(recs: Sequence[dict]) -> Stats:
  """The acceptance figures of records summed (`Stats.from_histogram`): with their drafted
  and rejected counts where every record kept them (records from before assume a fixed k)."""
  hist = np.sum([r["histogram"] for r in recs], axis=0)
  if not all("drafted" in r for r in recs):
    return Stats.from_histogram(hist)
  return Stats.from_histogram(hist, sum(r["drafted"] for r in recs),
                              sum(r["rejected"] for r in recs))


def finished_part(groups: Sequence[list], recs: Dict[str, list]
                  ) -> Tuple[List[int], Dict[str, list]]:
  """The examples every method has finished every sample of, and their records.

  `recs[method][g]` is the record of `groups[g]` or None. A partial run is
  summarized over these alone, so that every row compares the methods on the
  same examples.
  """
  unfinished = {e for g, group in enumerate(groups) if any(r[g] is None for r in recs.values())
                for e, _ in group}
  keep = [g for g, group in enumerate(groups) if not unfinished & {e for e, _ in group}]
  examples = sorted({e for g in keep for e, _ in groups[g]})
  return examples, {m: [r[g] for g in keep] for m, r in recs.items()}

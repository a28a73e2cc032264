"""Report writers: the Table 1 Markdown, CSV files, and the K sweep's table and figure."""
import csv
import json
from typing import List, Sequence

import numpy as np

TABLE_COLUMNS = ["task", "mode", "method", "examples", "metrics", "ms_per_token", "speedup",
                 "decode_ms_per_token", "decode_speedup", "loop_efficiency",
                 "acceptance_rate", "alpha", "mean_accepted_length", "mean_draft_length", "c",
                 "r",
                 "predicted_speedup", "new_tokens", "seconds", "prefill_s", "loop_s",
                 "target_s", "draft_s", "loop_rest_s", "host_s", "compile_s", "identical_to_ars"]


def _fmt(v, spec: str) -> str:
  return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def metric_text(metrics: dict) -> str:
  return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())


def table_markdown(title: str, rows: List[dict], bullets: Sequence[str]) -> str:
  """Table 1: one line per (task, mode, method) row of `table1.summarize_row`."""
  lines = [f"# {title}", ""] + [f"- {b}" for b in bullets] + [""]
  lines += ["| task | sampling | method | metric | ms/token | speedup | decode ms/token | "
            "decode speedup | prefill share | acceptance rate | mean accepted length | "
            "predicted speedup (a, c, r) | efficiency |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    pred = "-" if "predicted_speedup" not in r else (
        f"{r['predicted_speedup']:.2f}x (a={r['alpha']:.2f}, c={r['c']:.3f}, r={r['r']:.2f}"
        + (f", mean K={r['mean_draft_length']:.2f})" if "mean_draft_length" in r else ")"))
    share = r["prefill_s"] / r["seconds"] if "prefill_s" in r and r["seconds"] else None
    lines.append(f"| {r['task']} | {r['mode']} | {r['method']} | {metric_text(r['metrics'])} | "
                 f"{r['ms_per_token']:.2f} | {r['speedup']:.2f}x | "
                 f"{_fmt(r.get('decode_ms_per_token'), '.2f')} | "
                 f"{_fmt(r.get('decode_speedup'), '.2f')}{'x' if 'decode_speedup' in r else ''} | "
                 f"{_fmt(share, '.0%')} | {_fmt(r.get('acceptance_rate'), '.3f')} | "
                 f"{_fmt(r.get('mean_accepted_length'), '.2f')} | {pred} | "
                 f"{_fmt(r.get('loop_efficiency'), '.2f')} |")
  return "\n".join(lines) + "\n"


def sweep_markdown(rows: List[dict], new_tokens: int) -> str:
  """Figure 1 as a table: one line per K of `k_sweep.run_sweep`."""
  lines = [f"| K | s per {new_tokens} tokens (mean ± std) | mean accepted length/(K+1) | "
           "accepted/proposed | ms/loop |", "|---|---|---|---|---|"]
  lines += [f"| {r.get('line', r['K'])} | {r['mean_s']:.2f} ± {r['std_s']:.2f} | {r['accepted_over_k1']:.3f} | "
            f"{r['acceptance_rate']:.3f} | {r['ms_per_loop']:.1f} |" for r in rows]
  return "\n".join(lines) + "\n"


def write_csv(path: str, rows: List[dict], columns: Sequence[str]) -> None:
  """One line per row; dict values (metrics) as JSON, missing ones empty."""
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    for r in rows:
      w.writerow({c: (json.dumps(r[c]) if isinstance(r.get(c), dict) else r.get(c, ""))
                  for c in columns})


def plot_sweep(rows: List[dict], path: str, new_tokens: int, title: str) -> None:
  """Figure 1's three panels against K: time to sample, acceptance, time per loop."""
  import matplotlib  # the eval extra
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  adaptive = [r for r in rows if r.get("line", r["K"]) != r["K"]]  # at its mean draft length
  rows = [r for r in rows if r not in adaptive]
  K = [r["K"] for r in rows]
  fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
  for r in adaptive:
    ax[0].errorbar([r["K"]], [r["mean_s"]], yerr=[r["std_s"]], fmt="*", ms=12, capsize=3,
                   label=f"K {r['line']}")
    ax[1].plot([r["K"]], [r["acceptance_rate"]], "*", ms=12, label=f"K {r['line']}")
    ax[2].plot([r["K"]], [r["ms_per_loop"]], "*", ms=12)
  mean = np.array([r["mean_s"] for r in rows])
  ax[0].errorbar(K, mean, yerr=[r["std_s"] for r in rows], fmt="o-", capsize=3, label="mean ± std")
  ax[0].fill_between(K, [r["min_s"] for r in rows], [r["max_s"] for r in rows], alpha=0.2,
                     label="min-max")
  ax[0].set(xlabel="K", ylabel=f"seconds to sample {new_tokens} tokens")
  ax[0].legend()
  ax[1].plot(K, [r["accepted_over_k1"] for r in rows], "o-", label="mean accepted length / (K+1)")
  ax[1].plot(K, [r["acceptance_rate"] for r in rows], "s--", label="accepted / proposed")
  ax[1].set(xlabel="K", ylabel="acceptance", ylim=(0, 1.05))
  ax[1].legend()
  ax[2].plot(K, [r["ms_per_loop"] for r in rows], "o-")
  ax[2].set(xlabel="K", ylabel="ms per loop (one target call)")
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)

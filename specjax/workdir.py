"""A run's workdir, shared by training and evaluation: its claim, JSON outputs, a progress bar.

  claim_workdir(workdir, config)  records the run's config in WORKDIR/run_config.json, or
                                  checks that a resumed run's config equals it (else refuses,
                                  touching nothing)
  write_json(path, obj)           atomic JSON (readers never see half a file)
  Progress(total, initial)        a tqdm bar: in place on a terminal, throttled lines in logs;
                                  the rate and ETA count only this run's steps
"""
import json
import math
import os
import sys
import tempfile
import time
from typing import Any, Dict

import tqdm

CONFIG_FILE = "run_config.json"


def claim_workdir(workdir: str, config: Dict[str, Any]) -> bool:
  """Records `config` in a new workdir, or checks it equals the one there.

  Returns True when the workdir already held this run (resume). Raises
  ValueError, touching nothing, when it holds a different run, naming the
  first differing keys.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  config = json.loads(json.dumps(config, sort_keys=True))  # normalise tuples etc.
  if os.path.exists(path):
    old = _recorded_config(path)
    if old != config:
      diffs = _diff(old, config)
      raise ValueError(f"{workdir} holds a run with a different config (differs at "
                       f"{', '.join(diffs[:5])}); use a new --workdir (nothing was changed)")
    return True
  if os.listdir(workdir):
    raise ValueError(f"{workdir} is not empty and holds no {CONFIG_FILE}: refusing to run "
                     "in it (nothing was changed)")
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
  return False


def _recorded_config(path: str) -> Dict[str, Any]:
  """The config a workdir recorded; a file that is not one (empty, cut short, edited) is
  refused, naming it."""
  try:
    with open(path) as f:
      old = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"{path} is not a readable run config ({e}): it was cut short or edited; "
                     f"restore it, or use a new --workdir (nothing was changed)") from None
  if not isinstance(old, dict):
    raise ValueError(f"{path} holds {type(old).__name__}, not a run config: restore it, or use "
                     f"a new --workdir (nothing was changed)")
  return old


def _diff(a, b, prefix=""):
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in sorted(set(a) | set(b)):
      out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
    return out
  return [] if a == b else [f"{prefix[:-1]} ({a!r} -> {b!r})"]


def _duration(seconds: float) -> str:
  s = int(round(seconds))
  h, m = s // 3600, s // 60 % 60
  return f"{h}h{m:02d}m{s % 60:02d}s" if h else f"{m}m{s % 60:02d}s" if m else f"{s}s"


def _field(k, v) -> str:
  v = v.item() if hasattr(v, "item") else v  # numpy / jax scalars
  return f" {k}={v:.4g}" if isinstance(v, float) else f" {k}={v}"


class _LogLines:
  """tqdm's file in logs: each redraw ('\\r', the bar, padding) becomes a line of its own."""

  def __init__(self, stream):
    self.stream = stream

  def write(self, s: str):
    s = s.strip()
    if s:  # tqdm's bare '\r' and '\n' have no place in a log
      self.stream.write(s + "\n")

  def flush(self):
    self.stream.flush()


class Progress(tqdm.tqdm):
  """tqdm bar; redrawn in place on a terminal, throttled lines of their own in logs.

  Shows `step n/total [bar] pct% rate it/s ETA eta k=v ...`; `update(step, **fields)` moves the bar
  *to* `step`. The rate and ETA count only the steps since `initial` (tqdm's average rate, with
  smoothing=0), so a resumed run's ETA is not inflated.
  """

  monitor_interval = 0  # no tqdm monitor thread: updates alone decide when to draw

  def __init__(self, total: int, initial: int = 0, stream=None, min_interval: float = 0.5,
               clock=time.monotonic):
    stream = sys.stderr if stream is None else stream
    self.tty = bool(getattr(stream, "isatty", lambda: False)())
    self.fields, self.pending = {}, False
    # Logs are read later by people, so print there much less often than a terminal redraws.
    # delay=inf: tqdm draws nothing at construction, only from the first update on.
    super().__init__(total=total, initial=initial, file=stream if self.tty else _LogLines(stream),
                     mininterval=min_interval if self.tty else min_interval * 20, miniters=0,
                     smoothing=0, position=0, ascii="-#", delay=math.inf,
                     bar_format="step {n_fmt}/{total_fmt} [{bar:20}] {pct}% {speed} it/s "
                                "ETA {left}{fields}")
    # tqdm reads its clock from `_time`; never drawn yet, so the first update draws at once.
    self._time, self.start_t, self.last_print_t, self.delay = clock, clock(), -math.inf, 0
    # Lines are not cut to the terminal's size, as before: a pty that reports no size (0 columns
    # or rows) would otherwise show nothing at all.
    self.ncols = self.nrows = None

  @property
  def format_dict(self):
    d = super().format_dict
    done, elapsed, total = d["n"] - d["initial"], d["elapsed"], d["total"]
    rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
    frac = min(max(d["n"] / total, 0.0), 1.0) if total else 0.0
    return dict(d, pct=int(frac * 100), speed=f"{rate:.3g}",
                left=_duration((total - d["n"]) / rate) if rate > 0 else "?",
                fields="".join(_field(k, v) for k, v in self.fields.items()))

  def update(self, step: int, **fields):
    """Moves the bar to `step` (not by it), showing `fields` after the ETA."""
    self.fields = fields
    drawn = super().update(step - self.n)
    if not drawn and step >= self.total:  # the end is always shown
      drawn = self.refresh()
    self.pending = not drawn

  def advance(self, **fields):
    """One step done by this run."""
    self.update(self.n + 1, **fields)

  def skip(self):
    """One step found already done (a resumed run): counted, but not in the rate and ETA."""
    self.n += 1
    self.initial += 1

  def __del__(self):
    pass  # only close() ends the bar: at interpreter exit, tqdm's close would find no globals

  def close(self):
    # tqdm redraws the last state on close; a log needs it only if it was throttled away.
    if not (self.tty or self.pending):
      self.last_print_t = self.start_t - 1  # so tqdm takes it for never drawn: nothing to redraw
    super().close()


def _json_default(o):
  if hasattr(o, "ndim") and o.ndim == 0:  # numpy / jax scalars
    return o.item()
  if hasattr(o, "tolist"):
    return o.tolist()
  raise TypeError(f"not JSON serializable: {type(o).__name__}")


def write_json(path: str, summary: dict):
  """Writes `summary` as JSON atomically: readers never see a half-written file."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp.", suffix=".json")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(summary, f, indent=2, sort_keys=True, default=_json_default)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise

"""A training run's workdir: its config, resumable checkpoints, and the best draft so far.

  WORKDIR/run_config.json   the run's config; a different config is refused, never overwritten
  WORKDIR/checkpoints/<step>/{state, meta}
                            orbax CheckpointManager, last `keep` good steps: the train state
                            (step, trainable params, optimizer state), the RNG key data,
                            and JSON meta (data-iterator position, best acceptance so far,
                            a checksum of every array)
  WORKDIR/damaged_checkpoints/<step>.<time>
                            steps that failed to restore (unreadable, wrong checksum, NaN),
                            moved here on resume, which continues from the newest good step
  WORKDIR/best/             the best draft by measured acceptance, a specjax checkpoint
                            (`sj.load(WORKDIR/best)`), plus best.json
  WORKDIR/tensorboard/, WORKDIR/summary.json, WORKDIR/evals.jsonl (one line per acceptance
                            measurement: step, training tokens seen, acceptance)
"""
import json
import logging
import numbers
import os
import shutil
import time
from typing import Any, Dict, List, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from specjax.models import integrity
from specjax.models.orbax_io import save_checkpoint
from specjax.models.model import Model

BEST_FILE = "best.json"


class RunCheckpoints:
  """Orbax CheckpointManager over (train state, rng, JSON meta), keeping the last `keep` good
  steps.

  Integrity (orbax stores no checksums; models/integrity.py): the meta of every step holds a
  digest of each array of (state, rng). `save` refuses a non-finite state, writes, reads the
  step back and compares digests, and only then deletes steps beyond the newest `keep`, so
  rotation never removes a good step while a newer one is unverified. `restore` tries the
  steps newest first: a step that fails to read, fails its checksums or holds NaN/inf is
  reported, moved to WORKDIR/damaged_checkpoints/ (kept for inspection, out of orbax's way)
  and the next older one is tried.
  """

  def __init__(self, workdir: str, keep: int = 3):
    if isinstance(keep, bool) or not isinstance(keep, numbers.Integral) or keep < 1:
      raise ValueError(f"keep must be an integer >= 1 (checkpoints kept), got {keep!r}")
    self.workdir = os.path.abspath(workdir)
    self.keep = int(keep)
    self.damaged: List[Tuple[int, str]] = []  # (step, why) of the steps restore skipped
    self.manager = ocp.CheckpointManager(
        os.path.join(self.workdir, "checkpoints"),
        options=ocp.CheckpointManagerOptions(max_to_keep=None, create=True),
        item_names=("state", "meta"))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def save(self, step: int, state, key: jax.Array, meta: Dict[str, Any]) -> None:
    """Saves step `step`; raises (saving nothing) when the state holds NaN or inf."""
    tree = {"train": state, "rng": jax.random.key_data(key)}
    integrity.check_finite(tree, f"{self.workdir}: step {step}, not saved", "training state")
    meta = dict(meta, checksums=integrity.digests(tree))
    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                    meta=ocp.args.JsonSave(meta)), force=True)
    self.manager.wait_until_finished()  # a preemption right after must find it complete
    self._read(step, jax.tree.map(ocp.utils.to_shape_dtype_struct, tree))  # raises if damaged
    for old in sorted(self.manager.all_steps())[:-self.keep]:
      self.manager.delete(old)

  def _read(self, step: int, abstract) -> Tuple[Any, Dict[str, Any]]:
    where = os.path.join(self.workdir, "checkpoints", str(step))
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax/TensorStore errors: truncated, deleted or garbled files
      raise ValueError(f"{where}: cannot restore ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else ''})") from e
    meta = out["meta"]
    if not isinstance(meta, dict):
      raise ValueError(f"{where}: meta is not a JSON object")
    if "checksums" in meta:
      integrity.check_digests(out["state"], meta["checksums"], where)
    else:  # written before checksums existed
      logging.warning("%s: no checksums (an older specjax wrote it); restored unverified", where)
    integrity.check_finite(out["state"], where, "training state")
    return out["state"], dict(meta)

  def restore(self, abstract_state, key: jax.Array) -> Tuple[Any, jax.Array, Dict[str, Any]]:
    """(state, key, meta) of the newest good checkpoint, shaped and placed like the abstract
    ones; damaged newer steps are reported and moved aside. Raises when no step is good."""
    abstract = {"train": abstract_state, "rng": jax.random.key_data(key)}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract)
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        tree, meta = self._read(step, abstract)
      except ValueError as e:
        self._set_aside(step, str(e))
        continue
      meta.pop("checksums", None)
      return tree["train"], jax.random.wrap_key_data(tree["rng"]), meta
    raise ValueError(f"{self.workdir}: no checkpoint could be restored; the damaged ones are "
                     f"in {self._damaged_dir()}: " +
                     "; ".join(f"step {s}: {why}" for s, why in self.damaged))

  def _damaged_dir(self) -> str:
    return os.path.join(self.workdir, "damaged_checkpoints")

  def _set_aside(self, step: int, why: str) -> None:
    logging.warning("skipping damaged checkpoint step %d: %s", step, why)
    self.damaged.append((step, why))
    src = os.path.join(self.workdir, "checkpoints", str(step))
    dst = os.path.join(self._damaged_dir(), f"{step}.{time.strftime('%Y%m%dT%H%M%S')}")
    os.makedirs(self._damaged_dir(), exist_ok=True)
    if os.path.exists(src):
      os.replace(src, dst)
    self.manager.reload()

  def close(self) -> None:
    self.manager.close()


def best_acceptance(workdir: str) -> Optional[float]:
  path = os.path.join(workdir, "best", BEST_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return float(json.load(f)["acceptance"])


def save_best(workdir: str, model: Model, record: Dict[str, Any],
              base: Optional[Tuple[str, Model]] = None) -> None:
  """Replaces WORKDIR/best with `model` when record["acceptance"] beats the saved one.

  Written to a sibling directory first and swapped in, so a crash mid-save
  leaves the previous best intact. `base=(name, model)`: store only what differs from it.
  """
  old = best_acceptance(workdir)
  if old is not None and record["acceptance"] <= old:
    return
  best = os.path.join(workdir, "best")
  tmp = best + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  save_checkpoint(model.replace(params=jax.tree.map(np.asarray, model.params)), tmp, base=base)
  with open(os.path.join(tmp, BEST_FILE), "w") as f:
    json.dump(record, f, indent=2)
  if os.path.exists(best):
    shutil.rmtree(best + ".old", ignore_errors=True)
    os.replace(best, best + ".old")
  os.replace(tmp, best)
  shutil.rmtree(best + ".old", ignore_errors=True)

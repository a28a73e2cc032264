"""A training run's workdir: its config, resumable checkpoints, and the best draft so far.

  WORKDIR/run_config.json   the run's config; a different config is refused, never overwritten
  WORKDIR/checkpoints/<step>/{state, meta}
                            orbax CheckpointManager, last `keep` steps: the train state
                            (step, trainable params, optimizer state), the RNG key data,
                            and JSON meta (data-iterator position, best acceptance so far)
  WORKDIR/best/             the best draft by measured acceptance, a specjax checkpoint
                            (`sj.load(WORKDIR/best)`), plus best.json
  WORKDIR/tensorboard/, WORKDIR/summary.json, WORKDIR/evals.jsonl (one line per acceptance
                            measurement: step, training tokens seen, acceptance)
"""
import json
import os
import shutil
from typing import Any, Dict, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from specjax.models.orbax_io import save_checkpoint
from specjax.models.model import Model

BEST_FILE = "best.json"


class RunCheckpoints:
  """Orbax CheckpointManager over (train state, rng, JSON meta), keeping the last `keep`."""

  def __init__(self, workdir: str, keep: int = 3):
    self.workdir = os.path.abspath(workdir)
    self.manager = ocp.CheckpointManager(
        os.path.join(self.workdir, "checkpoints"),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_names=("state", "meta"))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def save(self, step: int, state, key: jax.Array, meta: Dict[str, Any]) -> None:
    tree = {"train": state, "rng": jax.random.key_data(key)}
    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                    meta=ocp.args.JsonSave(meta)), force=True)
    self.manager.wait_until_finished()  # a preemption right after must find it complete

  def restore(self, abstract_state, key: jax.Array) -> Tuple[Any, jax.Array, Dict[str, Any]]:
    """(state, key, meta) of the latest checkpoint, shaped and placed like the abstract ones."""
    step = self.manager.latest_step()
    abstract = {"train": abstract_state, "rng": jax.random.key_data(key)}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract)
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    tree = out["state"]
    return tree["train"], jax.random.wrap_key_data(tree["rng"]), dict(out["meta"])

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

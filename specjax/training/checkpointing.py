"""A training run's workdir: its config, resumable checkpoints, and the best draft so far.

  WORKDIR/run_config.json   the run's config; a different config is refused, never overwritten
  WORKDIR/checkpoints/<step>/{state, meta}
                            orbax CheckpointManager, last `keep` steps: the train state
                            (step, trainable params, optimizer state), the RNG key data,
                            and JSON meta (data-iterator position, best acceptance so far)
  WORKDIR/best/             the best draft by measured acceptance, a specjax checkpoint
                            (`sj.load(WORKDIR/best)`), plus best.json
  WORKDIR/tensorboard/, WORKDIR/summary.json
"""
import json
import os
import shutil
from typing import Any, Dict, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from specjax.checkpoint import save_checkpoint
from specjax.models.model import Model

CONFIG_FILE = "run_config.json"
BEST_FILE = "best.json"


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
    with open(path) as f:
      old = json.load(f)
    if old != config:
      diffs = _diff(old, config)
      raise ValueError(f"{workdir} holds a run with a different config (differs at "
                       f"{', '.join(diffs[:5])}); use a new --workdir (nothing was changed)")
    return True
  if os.listdir(workdir):
    raise ValueError(f"{workdir} is not empty and holds no {CONFIG_FILE}: refusing to train "
                     "into it (nothing was changed)")
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
  return False


def _diff(a, b, prefix=""):
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in sorted(set(a) | set(b)):
      out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
    return out
  return [] if a == b else [f"{prefix[:-1]} ({a!r} -> {b!r})"]


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


def save_best(workdir: str, model: Model, record: Dict[str, Any]) -> None:
  """Replaces WORKDIR/best with `model` when record["acceptance"] beats the saved one.

  Written to a sibling directory first and swapped in, so a crash mid-save
  leaves the previous best intact.
  """
  old = best_acceptance(workdir)
  if old is not None and record["acceptance"] <= old:
    return
  best = os.path.join(workdir, "best")
  tmp = best + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  save_checkpoint(model.replace(params=jax.tree.map(np.asarray, model.params)), tmp)
  with open(os.path.join(tmp, BEST_FILE), "w") as f:
    json.dump(record, f, indent=2)
  if os.path.exists(best):
    shutil.rmtree(best + ".old", ignore_errors=True)
    os.replace(best, best + ".old")
  os.replace(tmp, best)
  shutil.rmtree(best + ".old", ignore_errors=True)

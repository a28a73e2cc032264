"""Exports a trained draft (a training workdir's best/) as a small, shippable checkpoint.

Params equal to the base model's (e.g. a self-draft's shared target layers) are not stored:
the checkpoint names the base, and `sj.load` takes them from it.

  python -m experiments.export_draft --workdir=runs/drafts/adapter_tvd \
      --out=specjax/data/smollm2-135m-draft --base=smollm2-135m
"""
import json
import os
import shutil

from absl import app, flags, logging

import specjax as sj
from experiments import common

_WORKDIR = common.workdir_flag("training workdir (its best/ is exported)")
_OUT = flags.DEFINE_string("out", None, "checkpoint directory to write (replaced)")
_BASE = flags.DEFINE_string("base", "", "registered base model whose params need not be stored")
_NAME = flags.DEFINE_string("name", "smollm2-135m-draft", "the exported model's name")
_DTYPE = flags.DEFINE_enum("dtype", "", ["", "float32", "bfloat16"],
                           "store the params in this dtype (bfloat16: half the bytes; "
                           "sj.load casts back to float32); default: as trained")


def _size(path):
  return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def main(_):
  logging.set_verbosity(logging.WARNING)
  best = os.path.join(_WORKDIR.value, "best")
  draft = sj.load(best, _DTYPE.value or "float32").replace(name=_NAME.value)
  base = (_BASE.value, sj.load(_BASE.value, draft.config.dtype)) if _BASE.value else None
  shutil.rmtree(_OUT.value, ignore_errors=True)
  sj.save_checkpoint(draft, _OUT.value, base=base)
  with open(os.path.join(best, "best.json")) as f:
    record = json.load(f)
  with open(os.path.join(_WORKDIR.value, "run_config.json")) as f:
    config = json.load(f)
  with open(os.path.join(_OUT.value, "training.json"), "w") as f:  # how it was made
    json.dump({"best": record, "run_config": config}, f, indent=2)
  back = sj.load(_OUT.value, draft.config.dtype)  # it must load and equal the draft
  assert back.config == draft.config, (back.config, draft.config)
  print(f"{_OUT.value}: {_size(_OUT.value) / 2**20:.1f} MiB on disk; {draft.num_params / 1e6:.1f}M "
        f"params incl. any taken from the base; acceptance {record['acceptance']:.3f} at step "
        f"{record['step']}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir", "out"])
  app.run(main)

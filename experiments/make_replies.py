"""The target's own replies to chat prompts, for training feature drafts; resumable.

  python -m experiments.make_replies --config=configs/replies.py:smollm2 --workdir=data/replies
  python -m experiments.make_replies --config=configs/replies.py:smollm2_100m --workdir=... \
      --config.mesh_shape=-1 --config.mesh_shape=1   (an accelerator: batch over the mesh)

Re-running with the same --workdir resumes at the first missing shard (the shards it makes
are those an unstopped run makes). Prompts: specjax/training/prompts.py; shards:
specjax/training/replies.py. WORKDIR/prompts.json records the prompt counts per kind and the
held-out prompts that acceptance is measured on (`replies.heldout_prompts`).
"""
import re

from absl import flags
import jax

from configs.replies import SAMPLINGS
from experiments import common
from specjax.training import decontam, prompts, replies

_WORKDIR = common.workdir_flag("shard directory (resumed when it holds this run)")


def reply_config(cfg) -> replies.ReplyConfig:
  """The config's generation settings; every error names its field."""
  common.check_ints(cfg, shard_prompts=1, max_prompt_tokens=1, max_new_tokens=1, pad_multiple=1,
                    target_tokens=1, max_shards=0, seed=0, limit_bytes=0)
  common.check_floats(cfg, heldout_fraction=(0, 1))
  common.check_names(cfg, "samplings", "sampling names")
  common.check_names(cfg, "sources", "prompt sources")
  samplings = []
  for name in cfg.samplings:
    base = re.sub(r"\d+$", "", name)
    if base not in SAMPLINGS:
      raise ValueError(f"config.samplings: unknown {name!r}; names are {sorted(SAMPLINGS)}, "
                       "optionally numbered (nucleus2: another draw)")
    samplings.append((name, common.sampling(SAMPLINGS[base])))
  return replies.ReplyConfig(tuple(samplings), cfg.shard_prompts, cfg.max_prompt_tokens,
                             cfg.max_new_tokens, cfg.pad_multiple, cfg.seed)


def main(cfg):
  rcfg = reply_config(cfg)
  common.check_model(cfg, "target", real_only=True)
  common.rules_from_name(cfg.rules)
  mesh = common.mesh_from_config(cfg)
  rules = common.rules_from_name(cfg.rules) if mesh else None
  target = common.build_model(cfg.target, cfg.dtype)
  ps = prompts.build_prompts(decontam.eval_filter(), cfg.sources,
                             limit_bytes=cfg.limit_bytes or None,
                             heldout_fraction=cfg.heldout_fraction)
  summary = replies.generate_replies(target, ps.train, _WORKDIR.value, rcfg, cfg.target_tokens,
                                     max_shards=cfg.max_shards or None, mesh=mesh, rules=rules,
                                     heldout=ps.heldout, stats=ps.stats,
                                     verbose=jax.process_index() == 0)
  if jax.process_index() == 0:
    print(summary)


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  common.run(main, "configs/replies.py:smollm2")

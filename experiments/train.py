"""Train a model from scratch, distil a draft from a target, or train a feature draft
(EAGLE-3 style, training-time test) on the target's own replies; resumable in --workdir.

  python -m experiments.train --config=configs/train.py:tiny --workdir=/tmp/run
  python -m experiments.train --config=configs/train.py:smollm2_small --workdir=runs/small \
      --config.distill.divergence=jsd --config.data.mixture=corpus:1,target:1
  python -m experiments.train --config=configs/train.py:smollm2_eagle --workdir=runs/eagle \
      --config.data.replies=data/replies_smollm2     (make_replies.py writes the replies)

Re-running with the same --workdir resumes the run; a workdir holding a run of a
different config is refused. SIGTERM (a preempted TPU VM) saves and exits.
WORKDIR/best is the best draft by measured acceptance (`sj.load(WORKDIR/best)`).
"""
from absl import flags, logging
import jax
import numpy as np

import specjax as sj
from configs import model as model_configs
from experiments import common
from experiments.train_config import check, check_len, loop_config, ttt_config
from specjax import training
from specjax.models import drafts
from specjax.training import data, loop, replies

_WORKDIR = common.workdir_flag("run directory (resumed when it holds this run)")


def _data(cfg, target, rng):
  """(train rows or reply examples' batches, eval prompts, token stream, vocab size)."""
  if cfg.data.sources == "random":  # random-token rows: tiny models and tests
    vocab = target.config.vocab_size if target else \
        model_configs.get_config(cfg.draft.preset).vocab_size
    rows = rng.integers(0, vocab, (512, cfg.data.seq_len)).astype(np.int32)
    prompts = {"random": rng.integers(0, vocab, (cfg.eval.prompts, cfg.eval.prompt_len)).tolist()}
    return data.Batches(rows, cfg.data.batch_size, cfg.seed), prompts, rows, vocab
  base = target if target is not None and target.tokenizer else sj.load("smollm2-135m")
  tok = base.tokenizer
  if cfg.data.sources == "replies":  # the target's own replies (experiments/make_replies.py)
    examples = replies.load_examples(cfg.data.replies, max_shards=cfg.data.max_shards or None)
    batches = replies.ReplyBatches(examples, cfg.data.seq_len, cfg.data.batch_size, cfg.seed,
                                   join=cfg.data.join)
    prompts = replies.heldout_prompts(cfg.data.replies, tok, cfg.eval.prompts,
                                      cfg.eval.prompt_len)
    stream = np.concatenate([e.tokens[e.prompt_len:] for e in examples])
    return batches, prompts, stream, tok.vocab_size
  # real text needs a tokenizer: the target's, else SmolLM2's (scratch models)
  corpus = data.build_corpus(cfg.data.sources.split(","), tok, cfg.data.seq_len, base.eos_id,
                             limit_bytes=cfg.data.limit_bytes or None,
                             heldout_fraction=cfg.data.heldout_fraction)
  prompts = {}
  for name in ("code", "prose"):
    docs = [d for d in corpus.heldout_docs if d.source == name]
    if docs:
      prompts[name] = data.heldout_prompts(docs, tok, cfg.eval.prompts, cfg.eval.prompt_len)
  return (data.Batches(corpus.train_NT, cfg.data.batch_size, cfg.seed), prompts, corpus.train_NT,
          tok.vocab_size)


def _draft(cfg, target, vocab, ids, key):
  d = cfg.draft
  if d.kind == "small":
    return drafts.small_draft(target, key, d_model=d.d_model, num_layers=d.layers,
                              num_heads=d.num_heads, num_kv_heads=d.num_kv_heads,
                              head_dim=d.head_dim, d_ff=d.d_ff, vocab_ids=ids)
  if d.kind == "self":
    return drafts.adapted_self_draft(target, d.layers, key, d.adapter_dim, ids)
  if d.kind == "feature" and d.path:  # train on from a saved feature draft
    model = sj.load(d.path, cfg.dtype)
    if not getattr(model.config, "feature_layers", None):
      raise ValueError(f"config.draft.path {d.path!r} is not a feature draft (it reads no "
                       "target layers); draft.kind 'load' trains other saved drafts")
    return model
  if d.kind == "feature":
    return sj.feature_draft(target, key, feature_layers=tuple(d.feature_layers) or None,
                            vocab_ids=ids, d_ff=d.d_ff or None)
  if d.kind == "preset":  # a configs/model.py shape, with the data's vocab
    mc = sj.ModelConfig.from_dict(model_configs.get_config(d.preset)).replace(
        vocab_size=vocab, dtype=cfg.dtype)
    return sj.init_model(mc, key, name=d.preset)
  if d.kind == "load":  # continue training a saved draft
    return sj.load(d.path, cfg.dtype)
  raise ValueError(f"draft.kind must be small, self, feature, preset or load, got {d.kind!r}")


def build(cfg):
  """(target, model to train, batches, eval prompts, mixture); every config error raises
  here, before any data is built (the loaded models' lengths before the first step)."""
  mixture = check(cfg)
  if cfg.draft.kind == "preset":
    check_len(cfg, sj.ModelConfig.from_dict(model_configs.get_config(cfg.draft.preset)),
               "draft")
  target = common.build_model(cfg.target, cfg.dtype, cfg.target_seed) if cfg.target else None
  check_len(cfg, target and target.config, "target")
  V = target.config.vocab_size if target else None
  rng = np.random.default_rng(cfg.seed)
  batches, prompts, stream, vocab = _data(cfg, target, rng)
  ids = None
  if cfg.draft.sub_vocab:
    ids = drafts.frequent_ids(stream, V, cfg.draft.sub_vocab,
                              always=[target.eos_id] if target.eos_id is not None else [])
  model = _draft(cfg, target, vocab, ids, jax.random.key(cfg.seed))
  check_len(cfg, model.config, "draft")
  if target is not None and model.config.vocab_size != target.config.vocab_size:
    raise ValueError(f"draft vocab ({model.config.vocab_size}) != target vocab "
                     f"({target.config.vocab_size}): the accept rule compares ids")
  if target is not None and isinstance(model, sj.Model):
    model = model.replace(tokenizer=target.tokenizer, eos_id=target.eos_id)
  return target, model, batches, prompts, mixture


def run(cfg, workdir: str, **kw) -> dict:
  target, model, batches, prompts, mixture = build(cfg)
  loop_cfg = loop_config(cfg, mixture)
  optim = training.OptimConfig(total_steps=cfg.steps, **cfg.optim.to_dict())
  distill = training.DistillConfig(cfg.distill.divergence, loop_cfg.gen_sampling,
                                   cfg.distill.beta)
  return loop.train(workdir, cfg.to_dict(), loop_cfg, model, batches, target=target,
                    distill=distill if cfg.mode == "distill" else None, optim=optim,
                    eval_prompts=prompts if target is not None else None,
                    ttt_config=ttt_config(cfg) if cfg.mode == "feature" else None, **kw)


def main(cfg):
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  summary = run(cfg, _WORKDIR.value)
  summary.pop("params")
  print({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  common.run(main, "configs/train.py:tiny")

"""Train a model from scratch, or distil a draft from a target; resumable in --workdir.

  python -m experiments.train --config=configs/train.py:tiny --workdir=/tmp/run
  python -m experiments.train --config=configs/train.py:smollm2_small --workdir=runs/small \
      --config.distill.divergence=jsd --config.data.mixture=corpus:1,target:1

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
from specjax import training
from specjax.models import drafts
from specjax.training import data, loop

_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (resumed when it holds this run)")


def parse_mixture(text: str):
  pairs = []
  for item in text.split(","):
    name, _, weight = item.partition(":")
    try:
      pairs.append((name.strip(), float(weight or 1)))
    except ValueError:
      raise ValueError(f"data.mixture item {item!r} is not 'source:weight'") from None
  return tuple(pairs)


def build(cfg):
  """(target, model to train, batches, eval prompts); every config error raises here."""
  mixture = parse_mixture(cfg.data.mixture)
  loop.check_mixture(mixture, cfg.mode)
  sampling = common.sampling(cfg.distill.sampling)
  common.sampling(cfg.eval.sampling)  # raises on a bad one
  if cfg.mode == "distill":
    training.losses.check_divergence(cfg.distill.divergence, sampling, cfg.distill.beta)
  elif cfg.mode != "lm":
    raise ValueError(f"mode must be 'distill' or 'lm', got {cfg.mode!r}")
  target = common.build_model(cfg.target, cfg.dtype, cfg.target_seed) if cfg.target else None
  if target is None and cfg.mode == "distill":
    raise ValueError("mode 'distill' needs config.target")
  V = target.config.vocab_size if target else None
  rng = np.random.default_rng(cfg.seed)
  vocab = V or model_configs.get_config(cfg.draft.preset).vocab_size
  if cfg.data.sources == "random":  # random-token rows: tiny models and tests
    rows = rng.integers(0, vocab, (512, cfg.data.seq_len)).astype(np.int32)
    train_NT, prompts = rows, {"random": rng.integers(0, vocab, (cfg.eval.prompts,
                                                                   cfg.eval.prompt_len)).tolist()}
  else:  # real text needs a tokenizer: the target's, else SmolLM2's (scratch models)
    base = target if target is not None and target.tokenizer else sj.load("smollm2-135m")
    tok = base.tokenizer
    corpus = data.build_corpus(cfg.data.sources.split(","), tok, cfg.data.seq_len, base.eos_id,
                               limit_bytes=cfg.data.limit_bytes or None,
                               heldout_fraction=cfg.data.heldout_fraction)
    train_NT, prompts, vocab = corpus.train_NT, {}, tok.vocab_size
    for name, source in (("code", "code"), ("prose", "prose")):
      docs = [d for d in corpus.heldout_docs if d.source == source]
      if docs:
        prompts[name] = data.heldout_prompts(docs, tok, cfg.eval.prompts, cfg.eval.prompt_len)
  batches = data.Batches(train_NT, cfg.data.batch_size, cfg.seed)
  d = cfg.draft
  ids = None
  if d.sub_vocab:
    ids = drafts.frequent_ids(train_NT, V, d.sub_vocab,
                              always=[target.eos_id] if target.eos_id is not None else [])
  key = jax.random.key(cfg.seed)
  if d.kind == "small":
    model = drafts.small_draft(target, key, d_model=d.d_model, num_layers=d.layers,
                               num_heads=d.num_heads, num_kv_heads=d.num_kv_heads,
                               head_dim=d.head_dim, d_ff=d.d_ff, vocab_ids=ids)
  elif d.kind == "self":
    model = drafts.adapted_self_draft(target, d.layers, key, d.adapter_dim, ids)
  elif d.kind == "preset":  # a configs/model.py shape, with the data's vocab
    mc = sj.ModelConfig.from_dict(model_configs.get_config(d.preset)).replace(
        vocab_size=vocab, dtype=cfg.dtype)
    model = sj.init_model(mc, key, name=d.preset)
  elif d.kind == "load":  # continue training a saved draft
    model = sj.load(d.path, cfg.dtype)
  else:
    raise ValueError(f"draft.kind must be small, self, preset or load, got {d.kind!r}")
  if target is not None and model.config.vocab_size != target.config.vocab_size:
    raise ValueError(f"draft vocab ({model.config.vocab_size}) != target vocab "
                     f"({target.config.vocab_size}): the accept rule compares ids")
  if target is not None:
    model = model.replace(tokenizer=target.tokenizer, eos_id=target.eos_id)
  return target, model, batches, prompts, mixture


def loop_config(cfg, mixture) -> loop.LoopConfig:
  """The training loop's settings; the target generates (mixture `target:`) under the
  distillation's whole sampling config, the one its divergence warps with."""
  return loop.LoopConfig(
      mode=cfg.mode, steps=cfg.steps, trainable=cfg.trainable, mixture=mixture,
      prefix_len=cfg.data.prefix_len, gen_sampling=common.sampling(cfg.distill.sampling),
      ckpt_every=cfg.ckpt_every, keep=cfg.keep, eval_every=cfg.eval.every or cfg.steps + 1,
      eval_k=cfg.eval.k, eval_new_tokens=cfg.eval.new_tokens,
      eval_sampling=common.sampling(cfg.eval.sampling), log_every=cfg.log_every, seed=cfg.seed)


def run(cfg, workdir: str, **kw) -> dict:
  target, model, batches, prompts, mixture = build(cfg)
  loop_cfg = loop_config(cfg, mixture)
  optim = training.OptimConfig(total_steps=cfg.steps, **cfg.optim.to_dict())
  distill = training.DistillConfig(cfg.distill.divergence, loop_cfg.gen_sampling,
                                   cfg.distill.beta)
  return loop.train(workdir, cfg.to_dict(), loop_cfg, model, batches, target=target,
                    distill=distill if cfg.mode == "distill" else None, optim=optim,
                    eval_prompts=prompts if target is not None else None, **kw)


def main(cfg):
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  summary = run(cfg, _WORKDIR.value)
  summary.pop("params")
  print({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  common.run(main, "configs/train.py:tiny")

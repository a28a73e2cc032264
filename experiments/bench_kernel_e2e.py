"""End to end, before and after the CPU matmul kernel: ArS and SpS on a Table 1 task, side by side.

  python experiments/bench_kernel_e2e.py --config=configs/table1.py:medium --task=code \
      --examples=8 --drafters=smollm2-135m-draft,lookup:3 --out=runs/kernel_e2e.json

For each example, every method (ArS, and SpS with each of the config's drafters) runs
with the target's (and a model draft's) `ModelConfig.matmul` set to "xla" (before: XLA's
dot everywhere) and to "auto" (after: specjax's kernel for decode-sized products), one
after another in a rotating order, so both halves see the same machine. Prints, per
sampling mode, ms/token, the speedup over ArS with the same matmul and over ArS on
XLA, the acceptance rate, and how many completions equal the XLA run's; and r5 =
t(5 tokens) / t(1 token) of one target call with each matmul.
"""
import json
import os

from absl import app, flags
import jax
import numpy as np
from ml_collections import config_flags

import specjax as sj
from experiments import common
from experiments import speedup_table as st
from specjax.evals import tasks as tasks_lib
from specjax.kernels import cpu_matmul

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/table1.py:medium", "a Table 1 preset")
flags.DEFINE_string("task", "code", "summarization or code")
flags.DEFINE_integer("examples", 10, "the task's first N examples")
flags.DEFINE_list("drafters", None, "drafters (default: the config's)")
flags.DEFINE_list("modes", ["greedy", "nucleus"], "sampling modes of the task's config")
flags.DEFINE_list("matmuls", ["xla", "auto"], "ModelConfig.matmul values (the first: baseline)")
flags.DEFINE_integer("context", 256, "context of the r5 measurement")
flags.DEFINE_string("out", "", "optional JSON output path")


def with_matmul(model, matmul: str):
  return model.replace(config=model.config.replace(matmul=matmul))


def main(_):
  cfg = FLAGS.config
  if FLAGS.drafters:
    cfg.drafters = list(FLAGS.drafters)
  st.check_config(cfg)
  tcfg = cfg[FLAGS.task]
  tcfg.num_examples = FLAGS.examples
  base = common.build_model(cfg.target, cfg.dtype)
  task = tasks_lib.build(FLAGS.task, base.tokenizer, tcfg)
  ids = [base.tokenizer.encode(ex.prompt) for ex in task.examples]
  targets = {m: with_matmul(base, m) for m in FLAGS.matmuls}
  drafters = {}
  for m, target in targets.items():
    for d in cfg.drafters:
      drafter = sj.build_drafter(d, target, cfg.dtype)
      drafters[m, d] = with_matmul(drafter, m) if isinstance(drafter, sj.Model) else drafter
  methods = [(m, meth) for meth in st.method_names(cfg) for m in FLAGS.matmuls]
  print(f"kernel: {cpu_matmul.status()}; {len(ids)} {FLAGS.task} examples, modes "
        f"{FLAGS.modes}, K={cfg.k}, methods {len(methods)}", flush=True)

  r5 = {}
  for m, target in targets.items():
    t1 = common.seconds_per_call(target, 1, FLAGS.context)
    r5[m] = dict(t1_ms=1e3 * t1,
                 r5=common.seconds_per_call(target, cfg.k + 1, FLAGS.context) / t1)

  results = dict(kernel=cpu_matmul.status(), machine=st.machine(), task=FLAGS.task,
                 examples=len(ids), k=cfg.k, r5=r5, rows=[])
  for mode in FLAGS.modes:
    sampling = common.sampling(tcfg.modes[mode])
    recs = {mm: [] for mm in methods}
    for e, prompt in enumerate(ids):
      key = jax.random.fold_in(jax.random.key(cfg.seed), e)
      for j in range(len(methods)):
        m, meth = methods[(e + j) % len(methods)]
        draft = None if meth == st.ARS else drafters[m, st.drafter_name(meth)]
        out, dt = st.timed(st.generation(
            targets[m], draft, [prompt], cfg.k, max_new_tokens=tcfg.max_new_tokens,
            sampling=sampling, key=key, eos_id=list(task.stop_ids), pad_multiple=cfg.pad_multiple))
        recs[m, meth].append(st.record(meth, [[e, 0]], out, dt))
      print(f"  {mode}: example {e + 1}/{len(ids)}", flush=True)
    ms = {mm: 1e3 * sum(r["seconds"] for r in rs) / sum(sum(r["lengths"]) for r in rs)
          for mm, rs in recs.items()}
    base_m = FLAGS.matmuls[0]
    for (m, meth), rs in recs.items():
      stats = st.stats_of(np.sum([r["histogram"] for r in rs], axis=0))
      same = sum(a["texts"] == b["texts"] for a, b in zip(rs, recs[base_m, meth]))
      results["rows"].append(dict(
          mode=mode, method=meth, matmul=m, ms_per_token=ms[m, meth],
          speedup=ms[m, st.ARS] / ms[m, meth], speedup_vs_baseline_ars=ms[base_m, st.ARS] /
          ms[m, meth], acceptance_rate=None if meth == st.ARS else stats.acceptance_rate,
          same_completions=f"{same}/{len(rs)}"))

  print(f"\ntarget call, batch 1, context {FLAGS.context}: " + ", ".join(
      f"{m}: t(1) {v['t1_ms']:.2f} ms, r{cfg.k + 1} {v['r5']:.2f}" for m, v in r5.items()))
  print(f"| mode | method | matmul | ms/token | speedup (same matmul) | speedup vs ArS "
        f"{FLAGS.matmuls[0]} | acceptance | completions = {FLAGS.matmuls[0]}'s |")
  print("|---|---|---|---|---|---|---|---|")
  for r in results["rows"]:
    acc = "" if r["acceptance_rate"] is None else f"{r['acceptance_rate']:.3f}"
    print(f"| {r['mode']} | {r['method']} | {r['matmul']} | {r['ms_per_token']:.2f} | "
          f"{r['speedup']:.2f}x | {r['speedup_vs_baseline_ars']:.2f}x | {acc} | "
          f"{r['same_completions']} |")
  if FLAGS.out:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  app.run(main)

"""The training loop end to end on the tiny preset: resume, refusal, config errors."""
import json
import os
import signal

import jax
import numpy as np
import pytest

import specjax as sj
from configs import train as train_configs
from experiments import train as train_exp
from experiments import train_config
from tests.helpers import max_param_diff, read_scalars


def _cfg(**overrides):
  cfg = train_configs.get_config("tiny")
  cfg.steps, cfg.ckpt_every, cfg.eval.every = 6, 100, 3
  # Every data source in one run: corpus, target-generated and on-policy draft samples.
  cfg.data.mixture = "corpus:1,target:1,draft:1"
  cfg.update_from_flattened_dict(overrides)
  return cfg



def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
  cfg = _cfg()
  full = train_exp.run(cfg, str(tmp_path / "a"), verbose=False)

  def preempt(step):
    if step == 4:
      os.kill(os.getpid(), signal.SIGTERM)  # what a preempted TPU VM receives
  first = train_exp.run(cfg, str(tmp_path / "b"), verbose=False, on_step=preempt)
  assert first["preempted"] and first["step"] == 4
  assert os.path.isdir(tmp_path / "b" / "checkpoints" / "4")
  second = train_exp.run(cfg, str(tmp_path / "b"), verbose=False)
  assert second["resumed_from"] == 4 and second["step"] == 6 and not second["preempted"]
  assert max_param_diff(full["params"], second["params"]) <= 1e-6
  # Metrics: TensorBoard scalars, the JSON summary, the best draft by acceptance.
  scalars = read_scalars(str(tmp_path / "a" / "tensorboard"))
  assert {"train/loss", "train/lr", "train/tokens_per_s", "eval/acceptance"} <= set(scalars)
  assert [s for s, _ in scalars["eval/acceptance"]] == [3, 6]
  with open(tmp_path / "a" / "summary.json") as f:
    assert json.load(f)["step"] == 6
  best = sj.load(str(tmp_path / "a" / "best"))
  assert best.config.num_layers == 1 and best.config.vocab_size == 64


def test_a_workdir_of_another_run_is_refused_and_left_intact(tmp_path):
  train_exp.run(_cfg(steps=2, **{"data.mixture": "corpus:1"}), str(tmp_path), verbose=False)
  before = {p: os.path.getmtime(os.path.join(r, p))
            for r, _, files in os.walk(tmp_path) for p in files}
  with pytest.raises(ValueError, match="different config .*optim.learning_rate"):
    train_exp.run(_cfg(steps=2, **{"data.mixture": "corpus:1", "optim.learning_rate": 0.1}),
                  str(tmp_path), verbose=False)
  after = {p: os.path.getmtime(os.path.join(r, p))
           for r, _, files in os.walk(tmp_path) for p in files}
  assert before == after
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="not empty"):
    train_exp.run(_cfg(steps=2), str(tmp_path / "other"), verbose=False)
  assert os.listdir(tmp_path / "other") == ["notes.txt"]


@pytest.mark.parametrize("overrides,msg", [
    ({"distill.divergence": "kl"}, "unknown divergence 'kl'"),
    ({"distill.sampling.temperature": 0.0}, "temperature > 0"),
    ({"eval.sampling.top_p": 0.0}, "top_p"),
    ({"target": "/nonexistent/target"}, "neither a known model name"),
    ({"data.mixture": "corpus:1,teacher:1"}, "sources from"),
    ({"mode": "lm", "data.mixture": "target:1"}, "corpus only"),
    ({"draft.kind": "load", "draft.path": "VOCAB32"}, r"draft vocab \(32\) != target vocab"),
    ({"mode": "feature"}, "mode 'feature' trains draft.kind 'feature'"),
    ({"draft.kind": "feature"}, "draft.kind 'feature' is trained by mode 'feature'"),
    ({"mode": "feature", "draft.kind": "feature", "ttt.steps": 0}, "ttt steps must be"),
    ({"mode": "feature", "draft.kind": "feature", "draft.feature_layers": (7,)},
     "hidden_layers"),
    ({"data.sources": "replies", "data.replies": "/nonexistent"}, "no reply shards"),
])
def test_bad_configs_fail_before_training(tmp_path, overrides, msg):
  if overrides.get("draft.path") == "VOCAB32":
    other = sj.init_model(sj.ModelConfig(vocab_size=32), jax.random.key(0))
    sj.save(other, str(tmp_path / "d32"), format="orbax")
    overrides = {**overrides, "draft.path": str(tmp_path / "d32")}
  cfg = _cfg()
  cfg.update_from_flattened_dict(overrides)
  with pytest.raises(ValueError, match=msg):
    train_exp.run(cfg, str(tmp_path / "run"), verbose=False)
  assert not os.path.exists(tmp_path / "run")  # nothing written before the error


def test_tiny_feature_preset_trains_a_loadable_feature_draft(tmp_path):
  cfg = train_configs.get_config("tiny_feature")
  cfg.update_from_flattened_dict({"steps": 2, "eval.every": 2, "ttt.steps": 2})
  out = train_exp.run(cfg, str(tmp_path), verbose=False)
  assert out["step"] == 2 and {"loss_2", "top1_2", "acceptance"} <= set(out)
  assert sj.load(str(tmp_path / "best")).config.feature_layers


def test_a_saved_feature_draft_trains_on_from_its_weights(tmp_path):
  cfg = train_configs.get_config("tiny_feature")
  cfg.update_from_flattened_dict({"steps": 2, "eval.every": 2, "ttt.steps": 2})
  train_exp.run(cfg, str(tmp_path / "a"), verbose=False)
  saved = sj.load(str(tmp_path / "a" / "best"))
  cfg.update_from_flattened_dict({"draft.path": str(tmp_path / "a" / "best"),
                                  "optim.learning_rate": 1e-12, "optim.warmup_steps": 0})
  out = train_exp.run(cfg, str(tmp_path / "b"), verbose=False)
  assert out["step"] == 2
  # Starts from the saved weights (a negligible learning rate leaves them where they were).
  for a, b in zip(jax.tree.leaves(saved.params), jax.tree.leaves(out["params"])):
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), atol=1e-6)


def test_scratch_lm_preset_trains_on_real_code(tmp_path):
  """A Chinchilla-shaped model from scratch on the stdlib corpus, with its tokenizer's vocab."""
  cfg = train_configs.get_config("chinchilla_44m")
  cfg.update_from_flattened_dict({"data.sources": "code", "data.limit_bytes": 200_000,
                                  "data.seq_len": 32, "data.batch_size": 2, "steps": 2,
                                  "ckpt_every": 2})
  out = train_exp.run(cfg, str(tmp_path), verbose=False)
  assert out["step"] == 2 and np.isfinite(out["loss"]) and out["loss"] > 5  # ~ln(49152)
  assert out["params"]["embedding_VD"].shape == (49152, 512)


def test_on_policy_generation_and_eval_use_their_whole_sampling_configs():
  """The target generates (mixture `target:`) under all of distill.sampling, top_k and
  top_p included (it took the temperature alone); eval under eval.sampling."""
  cfg = _cfg(**{"distill.sampling.temperature": 0.7, "distill.sampling.top_k": 5,
                "distill.sampling.top_p": 0.9, "eval.sampling.temperature": 0.5,
                "eval.sampling.top_p": 0.8})
  loop_cfg = train_config.loop_config(cfg, train_config.parse_mixture(cfg.data.mixture))
  assert loop_cfg.gen_sampling == sj.Sampling(0.7, top_k=5, top_p=0.9)
  assert loop_cfg.eval_sampling == sj.Sampling(0.5, top_k=0, top_p=0.8)


@pytest.mark.parametrize("kw,match", [
    (dict(steps=-5), "LoopConfig.steps"), (dict(ckpt_every=0), "LoopConfig.ckpt_every"),
    (dict(keep=0), "LoopConfig.keep"), (dict(eval_every=0), "LoopConfig.eval_every"),
    (dict(eval_k=0), "LoopConfig.eval_k"), (dict(eval_new_tokens=0), "eval_new_tokens"),
    (dict(log_every=0), "LoopConfig.log_every"), (dict(prefix_len=0), "LoopConfig.prefix_len"),
    (dict(steps=True), "LoopConfig.steps"), (dict(mode="bogus"), "LoopConfig.mode"),
    (dict(mixture=(("corpus", float("nan")),)), "data mixture"),
    (dict(mixture=(("corpus", float("inf")),)), "data mixture"),
    (dict(mixture=(("corpus", 0.0),)), "positive total"),
    (dict(eval_sampling=0.5), "LoopConfig.eval_sampling")])
def test_loop_config_checks_itself(kw, match):
  from specjax.training import loop
  with pytest.raises(ValueError, match=match):
    loop.LoopConfig(**kw)


def test_loop_config_takes_numpy_integers():
  from specjax.training import loop
  assert loop.LoopConfig(steps=np.int64(3)).steps == 3

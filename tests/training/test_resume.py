"""Checkpoint integrity: damaged newest steps skipped on resume, rotation, non-finite state."""
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from configs import train as train_configs
from experiments import train as train_exp
from specjax.training import resume, train_step
from tests.helpers import max_param_diff, tiny_model

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _cfg(**overrides):
  cfg = train_configs.get_config("tiny")
  cfg.steps, cfg.ckpt_every, cfg.keep, cfg.eval.every = 6, 2, 3, 0
  cfg.data.mixture = "corpus:1"
  cfg.update_from_flattened_dict(overrides)
  return cfg



def _data_file(step_dir):
  files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(step_dir, "state"))
           for f in fs if os.path.basename(r) == "d"]
  return max(files, key=os.path.getsize)


def _flip(step_dir):
  path = _data_file(step_dir)
  data = bytearray(open(path, "rb").read())
  mid = len(data) // 2
  data[mid:mid + 256] = bytes(b ^ 0x5A for b in data[mid:mid + 256])
  open(path, "wb").write(bytes(data))


def _truncate(path):
  data = open(path, "rb").read()
  open(path, "wb").write(data[:len(data) // 2])


DAMAGE = {
    "bit_flip": _flip,
    "truncated_data": lambda d: _truncate(_data_file(d)),
    "truncated_METADATA": lambda d: _truncate(os.path.join(d, "state", "_METADATA")),
    "garbage_meta": lambda d: open(os.path.join(d, "meta", "metadata"), "w").write("{garbage"),
    "deleted_state": lambda d: shutil.rmtree(os.path.join(d, "state")),
    "emptied_step": lambda d: [shutil.rmtree(os.path.join(d, n)) if os.path.isdir(
        os.path.join(d, n)) else os.remove(os.path.join(d, n)) for n in os.listdir(d)],
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """A 6-step run checkpointed at steps 2, 4, 6, and its final parameters."""
  workdir = str(tmp_path_factory.mktemp("run") / "w")
  summary = train_exp.run(_cfg(), workdir, verbose=False)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4", "6"]
  return workdir, summary["params"]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_newest_step_is_skipped_and_the_run_resumes_from_the_good_one(
    tmp_path, finished_run, damage):
  src, params = finished_run
  workdir = str(tmp_path / "w")
  shutil.copytree(src, workdir)
  ckpts = os.path.join(workdir, "checkpoints")
  DAMAGE[damage](os.path.join(ckpts, "6"))
  before = {s: open(_data_file(os.path.join(ckpts, s)), "rb").read() for s in ("2", "4")}
  summary = train_exp.run(_cfg(), workdir, verbose=False)
  assert summary["resumed_from"] == 4 and summary["step"] == 6
  assert [d["step"] for d in summary["damaged_checkpoints"]] == [6]  # reported
  assert max_param_diff(summary["params"], params) <= 1e-6  # the same run as one never damaged
  damaged = os.listdir(os.path.join(workdir, "damaged_checkpoints"))
  assert len(damaged) == 1 and damaged[0].startswith("6.")
  assert sorted(os.listdir(ckpts)) == ["2", "4", "6"]  # the older steps are intact
  for s, data in before.items():
    assert open(_data_file(os.path.join(ckpts, s)), "rb").read() == data


def test_no_good_step_is_an_error_naming_each_one(tmp_path, finished_run):
  workdir = str(tmp_path / "w")
  shutil.copytree(finished_run[0], workdir)
  for s in ("2", "4", "6"):
    _flip(os.path.join(workdir, "checkpoints", s))
  with pytest.raises(ValueError, match=r"no checkpoint could be restored; the damaged ones are "
                                       r"in .*damaged_checkpoints: step 6: .*step 4: .*step 2"):
    train_exp.run(_cfg(), workdir, verbose=False)
  assert len(os.listdir(os.path.join(workdir, "damaged_checkpoints"))) == 3  # kept, not deleted


def test_a_nonfinite_step_stops_training_before_it_is_saved(tmp_path, monkeypatch):
  real = train_step.distill_step_jit
  calls = {"n": 0}

  def diverging(state, *a, **kw):  # the third update blows up, as a too-large lr would
    state, m = real(state, *a, **kw)
    calls["n"] += 1
    if calls["n"] == 3:
      state = state.replace(params=jax.tree.map(lambda x: x * jnp.nan, state.params))
    return state, m
  monkeypatch.setattr(train_step, "distill_step_jit", diverging)
  workdir = str(tmp_path / "w")
  with pytest.raises(FloatingPointError, match=r"step 3: non-finite parameter .*nothing of this "
                                               r"step was saved \(the newest checkpoint is step 2"):
    train_exp.run(_cfg(**{"eval.every": 2}), workdir, verbose=False)
  assert os.listdir(os.path.join(workdir, "checkpoints")) == ["2"]
  best = json.load(open(os.path.join(workdir, "best", resume.BEST_FILE)))
  assert best["step"] == 2
  assert all(np.isfinite(np.asarray(x)).all()
             for x in jax.tree.leaves(sj.load(os.path.join(workdir, "best")).params))


def test_run_checkpoints_refuse_nonfinite_state_and_keep_below_one(tmp_path):
  with pytest.raises(ValueError, match="keep must be an integer >= 1"):
    resume.RunCheckpoints(str(tmp_path), keep=0)
  with pytest.raises(ValueError, match="keep must be an integer >= 1"):
    resume.RunCheckpoints(str(tmp_path), keep=True)
  ckpts = resume.RunCheckpoints(str(tmp_path), keep=1)
  good = {"w": jnp.ones(3)}
  ckpts.save(1, good, jax.random.key(0), {"data": 0})
  with pytest.raises(ValueError, match=r"step 2, not saved: non-finite training state \(NaN or "
                                       r"inf\) in train/w"):
    ckpts.save(2, {"w": jnp.array([1.0, jnp.inf, 0.0])}, jax.random.key(0), {"data": 0})
  assert ckpts.manager.all_steps() == [1]
  ckpts.save(3, good, jax.random.key(0), {"data": 1})
  assert ckpts.manager.all_steps() == [3]  # keep=1: the older good step goes only now
  state, _, meta = ckpts.restore(good, jax.random.key(0))
  assert meta == {"data": 1} and np.array_equal(state["w"], good["w"])
  ckpts.close()


def test_save_best_never_replaces_the_best_with_a_nonfinite_model(tmp_path):
  m = tiny_model()
  resume.save_best(str(tmp_path), m, {"acceptance": 0.5, "step": 1})
  bad = m.replace(params=jax.tree.map(lambda x: x * jnp.nan, m.params))
  with pytest.raises(ValueError, match="non-finite parameters"):
    resume.save_best(str(tmp_path), bad, {"acceptance": 0.9, "step": 2})
  assert resume.best_acceptance(str(tmp_path)) == 0.5
  back = sj.load(str(tmp_path / "best"))
  assert max_param_diff(back.params, m.params) == 0

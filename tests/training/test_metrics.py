import itertools
import os
import re
import socket

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from specjax.training import metrics
from tests.helpers import read_scalars


def _write_some(logdir):
  with metrics.SummaryWriter(str(logdir)) as w:
    w.scalars({"loss": 0.1}, step=1)
    w.scalars({"loss": 2.5, "acc": np.float32(0.75)}, step=2)
    w.scalars({"lr": jnp.asarray(3e-4)}, step=-1)  # negative int64 steps survive
  (name,) = [n for n in os.listdir(logdir) if "tfevents" in n and n.endswith(".specjax")]
  return os.path.join(logdir, name)


def test_scalars_round_trip(tmp_path):
  path = _write_some(tmp_path)
  name = os.path.basename(path)
  # events.out.tfevents.<seconds>.<host>.<pid>.<serial of the writer in this process>.specjax
  assert re.fullmatch(rf"events\.out\.tfevents\.\d+\.{re.escape(socket.gethostname())}"
                      rf"\.{os.getpid()}\.\d+\.specjax", name), name
  got = read_scalars(path)
  assert sorted(got) == ["acc", "loss", "lr"]
  assert [s for s, _ in got["loss"]] == [1, 2]
  # simple_value is a float32: 0.1 comes back only to float32 precision.
  np.testing.assert_allclose([v for _, v in got["loss"]], [0.1, 2.5], rtol=1e-7)
  assert got["acc"] == [(2, 0.75)]
  assert got["lr"][0][0] == -1 and got["lr"][0][1] == pytest.approx(3e-4, rel=1e-7)
  assert read_scalars(str(tmp_path)) == got  # a directory reads its event files


def test_writers_in_the_same_second_keep_their_own_files(tmp_path, monkeypatch):
  # Serials 9 and 10, as in a full test run where earlier tests made writers: their files must
  # still be read in the order they were written.
  monkeypatch.setattr(metrics, "_WRITER_SERIALS", itertools.count(9))
  for step in (1, 2):  # a run, then the same run resumed at once in this process
    with metrics.SummaryWriter(str(tmp_path)) as w:
      w.scalars({"loss": step / 4}, step=step)
  assert len(os.listdir(tmp_path)) == 2
  assert read_scalars(str(tmp_path)) == {"loss": [(1, 0.25), (2, 0.5)]}


def test_tensorboard_reads_file(tmp_path):
  _write_some(tmp_path)
  acc = event_accumulator.EventAccumulator(str(tmp_path))
  acc.Reload()
  assert sorted(acc.Tags()["scalars"]) == ["acc", "loss", "lr"]
  assert [(e.step, e.value) for e in acc.Scalars("acc")] == [(2, 0.75)]
  assert [e.step for e in acc.Scalars("loss")] == [1, 2]
  np.testing.assert_allclose([e.value for e in acc.Scalars("loss")], [0.1, 2.5], rtol=1e-7)

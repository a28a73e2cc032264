import io
import json
import os
import re
import socket

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from specjax.training import metrics


def _write_some(logdir):
  with metrics.SummaryWriter(str(logdir)) as w:
    w.scalar("loss", 0.1, step=1)
    w.scalars({"loss": 2.5, "acc": np.float32(0.75)}, step=2)
    w.scalar("lr", jnp.asarray(3e-4), step=-1)  # negative int64 steps survive
  (name,) = [n for n in os.listdir(logdir) if "tfevents" in n and n.endswith(".specjax")]
  return os.path.join(logdir, name)


def test_scalars_round_trip(tmp_path):
  path = _write_some(tmp_path)
  name = os.path.basename(path)
  # events.out.tfevents.<seconds>.<host>.<pid>.<serial of the writer in this process>.specjax
  assert re.fullmatch(rf"events\.out\.tfevents\.\d+\.{re.escape(socket.gethostname())}"
                      rf"\.{os.getpid()}\.\d+\.specjax", name), name
  got = metrics.read_scalars(path)
  assert sorted(got) == ["acc", "loss", "lr"]
  assert [s for s, _ in got["loss"]] == [1, 2]
  # simple_value is a float32: 0.1 comes back only to float32 precision.
  np.testing.assert_allclose([v for _, v in got["loss"]], [0.1, 2.5], rtol=1e-7)
  assert got["acc"] == [(2, 0.75)]
  assert got["lr"][0][0] == -1 and got["lr"][0][1] == pytest.approx(3e-4, rel=1e-7)
  assert metrics.read_scalars(str(tmp_path)) == got  # a directory reads its event files


def test_writers_in_the_same_second_keep_their_own_files(tmp_path):
  for step in (1, 2):  # a run, then the same run resumed at once in this process
    with metrics.SummaryWriter(str(tmp_path)) as w:
      w.scalar("loss", step / 4, step=step)
  assert len(os.listdir(tmp_path)) == 2
  assert metrics.read_scalars(str(tmp_path)) == {"loss": [(1, 0.25), (2, 0.5)]}


def test_tensorboard_reads_file(tmp_path):
  _write_some(tmp_path)
  acc = event_accumulator.EventAccumulator(str(tmp_path))
  acc.Reload()
  assert sorted(acc.Tags()["scalars"]) == ["acc", "loss", "lr"]
  assert [(e.step, e.value) for e in acc.Scalars("acc")] == [(2, 0.75)]
  assert [e.step for e in acc.Scalars("loss")] == [1, 2]
  np.testing.assert_allclose([e.value for e in acc.Scalars("loss")], [0.1, 2.5], rtol=1e-7)


class _Clock:
  def __init__(self):
    self.t = 100.0

  def __call__(self):
    return self.t


def test_progress_log_stream():
  stream, clock = io.StringIO(), _Clock()
  bar = metrics.Progress(1000, initial=100, stream=stream, min_interval=0.5, clock=clock)
  clock.t += 10.0
  bar.update(120, loss=np.float32(2.3125), acc=0.41)  # 20 steps in 10 s since the resume
  line = stream.getvalue()
  assert line.startswith("step 120/1000 [##------------------] 12% 2 it/s ETA 7m20s")
  assert line.rstrip().endswith("loss=2.312 acc=0.41") and "\r" not in line
  clock.t += 1.0
  bar.update(121)  # within 20 * min_interval of the last line: throttled in a log
  assert stream.getvalue() == line
  bar.close()  # ...but the final state is still printed
  assert stream.getvalue().splitlines()[-1].startswith("step 121/1000")


def test_progress_tty_and_eta_format():
  class Tty(io.StringIO):
    def isatty(self):
      return True

  stream, clock = Tty(), _Clock()
  bar = metrics.Progress(10_000, stream=stream, clock=clock)
  bar.update(0)
  assert "ETA ?" in stream.getvalue()
  clock.t += 1.0
  bar.update(1)
  assert stream.getvalue().count("\r") == 2 and "ETA 2h46m39s" in stream.getvalue()
  bar.close()
  assert stream.getvalue().endswith("\n")


def test_write_summary_round_trip(tmp_path):
  path = tmp_path / "sub" / "summary.json"
  summary = {"acc": np.float32(0.5), "steps": np.int64(7), "x": jnp.asarray(1.5),
             "hist": np.arange(3), "name": "tiny"}
  metrics.write_summary(str(path), summary)
  assert json.loads(path.read_text()) == {"acc": 0.5, "steps": 7, "x": 1.5, "hist": [0, 1, 2],
                                          "name": "tiny"}
  assert os.listdir(path.parent) == ["summary.json"]  # no temp file left behind

"""specjax.workdir: the workdir claim, atomic JSON, the progress bar."""
import io
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from specjax.workdir import CONFIG_FILE, Progress, claim_workdir, write_json


def test_claim_records_then_resumes_then_refuses_another_config(tmp_path):
  w = str(tmp_path / "run")
  assert claim_workdir(w, {"a": 1, "b": {"c": (1, 2)}}) is False
  assert claim_workdir(w, {"a": 1, "b": {"c": [1, 2]}}) is True  # tuples normalised
  before = open(os.path.join(w, CONFIG_FILE)).read()
  with pytest.raises(ValueError, match=r"differs at b\.c"):
    claim_workdir(w, {"a": 1, "b": {"c": [1, 3]}})
  assert open(os.path.join(w, CONFIG_FILE)).read() == before  # nothing changed


def test_claim_refuses_a_foreign_non_empty_dir(tmp_path):
  (tmp_path / "x.txt").write_text("mine")
  with pytest.raises(ValueError, match="not empty"):
    claim_workdir(str(tmp_path), {"a": 1})
  assert os.listdir(tmp_path) == ["x.txt"]


class _Clock:
  def __init__(self):
    self.t = 100.0

  def __call__(self):
    return self.t


def test_progress_log_stream():
  stream, clock = io.StringIO(), _Clock()
  bar = Progress(1000, initial=100, stream=stream, min_interval=0.5, clock=clock)
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
  bar = Progress(10_000, stream=stream, clock=clock)
  bar.update(0)
  assert "ETA ?" in stream.getvalue()
  clock.t += 1.0
  bar.update(1)
  assert stream.getvalue().count("\r") == 2 and "ETA 2h46m39s" in stream.getvalue()
  bar.close()
  assert stream.getvalue().endswith("\n")


def test_write_json_round_trip(tmp_path):
  path = tmp_path / "sub" / "summary.json"
  summary = {"acc": np.float32(0.5), "steps": np.int64(7), "x": jnp.asarray(1.5),
             "hist": np.arange(3), "name": "tiny"}
  write_json(str(path), summary)
  assert json.loads(path.read_text()) == {"acc": 0.5, "steps": 7, "x": 1.5, "hist": [0, 1, 2],
                                          "name": "tiny"}
  assert os.listdir(path.parent) == ["summary.json"]  # no temp file left behind


def test_skipped_steps_count_but_not_in_the_rate():
  now = [0.0]
  stream = io.StringIO()
  progress = Progress(10, stream=stream, clock=lambda: now[0], min_interval=0)
  for _ in range(6):  # done by an earlier run
    progress.skip()
  now[0] = 4.0
  progress.advance(task="t")
  progress.advance(task="t")
  line = stream.getvalue().splitlines()[-1]
  assert line.startswith("step 8/10") and "0.5 it/s" in line and "ETA 4s" in line, line


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2]", "\xff\xfe"])
def test_an_unreadable_run_config_is_refused_naming_the_file(tmp_path, text):
  path = tmp_path / CONFIG_FILE
  path.write_bytes(text.encode("latin-1"))
  with pytest.raises(ValueError, match=f"{CONFIG_FILE}.*use a new --workdir"):
    claim_workdir(str(tmp_path), {"a": 1})
  assert path.read_bytes() == text.encode("latin-1")  # untouched

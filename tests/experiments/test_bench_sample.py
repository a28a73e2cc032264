"""bench_sample runs and prints both samplers' figures (a smoke test: timings are not asserted)."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_sample_prints_legacy_and_new_side_by_side():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run(
      [sys.executable, "experiments/bench_sample.py", "--target=random:tiny", "--vocab=512",
       "--new_tokens=8", "--rounds=1", "--repeats=1", "--zero_draws=4000"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = [l.split("|")[1:-1] for l in proc.stdout.splitlines() if l.startswith("| ")]
  figures = {r[0].strip(): r[1:] for r in rows}
  for key in ("sample us/row, 1 row", "sample us/row, 5 rows", "ArS ms/token",
              "SpS[lookup:3] ms/token"):
    assert float(figures[key][0]) > 0 and float(figures[key][1]) > 0, key
  zero = [r for r in rows if r[0].strip().startswith("top_k")]
  assert len(zero) == 2 and all(int(r[2]) == 0 for r in zero)  # the new sampler: none

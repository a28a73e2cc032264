"""bench_verify runs and prints a ratio per T (a smoke test: timings are not asserted)."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_verify_prints_ratios_for_every_op(tmp_path):
  out = tmp_path / "r.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run(
      [sys.executable, "experiments/bench_verify.py", "--models=tiny", "--dtypes=float32",
       "--batches=1,2", "--tokens=1,3", "--calls=2", "--rounds=1", "--context=8", f"--out={out}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = [l for l in proc.stdout.splitlines() if l.startswith("| tiny |")]
  assert len(lines) == 2 * 4 * 2  # batches x ops x matmuls (xla, auto)
  import json
  rows = json.loads(out.read_text())["rows"]
  assert {r["op"] for r in rows} == {"model", "attention", "mlp", "head"}
  assert {r["matmul"] for r in rows} == {"xla", "auto"}
  assert all(r["r"]["1"] == 1.0 and r["r"]["3"] > 0 for r in rows)

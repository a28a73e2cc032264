"""Evaluation tasks for the speedup tables: prompts, stop ids, and scoring (ROUGE-2, pass@k)."""
from specjax.evals import metrics, tasks

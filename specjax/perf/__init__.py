"""Measurement: compile-free timing, the machine, c and r, the one predicted-speedup function,
and the time accounting of a generation."""
from specjax.perf.costs import (Costs, draft_seconds_per_token, iteration_costs,
                                measure_adaptive_k, measure_costs, predicted_from_mean_length,
                                predicted_speedup, r_at_length, seconds_per_call)
from specjax.perf.accounting import account, loop_efficiency
from specjax.perf.timing import (GenerationTime, compile_count, machine, median_seconds, timed,
                                 timed_generation)

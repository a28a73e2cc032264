"""Training: losses (incl. distillation divergences) and jitted train steps."""
from specjax.training.losses import DIVERGENCES, cross_entropy, distill_loss, divergence
from specjax.training.train_step import (DistillConfig, OptimConfig, TrainState, distill_step_jit,
                                         init_train_state, lm_step_jit, make_optimizer,
                                         split_params)

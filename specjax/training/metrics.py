"""Training metrics: TensorBoard scalars (tensorboardX). Progress and JSON: specjax.workdir."""
import itertools
import os

import tensorboardX

# tensorboardX names an event file by host and the time in whole seconds, and truncates a file of
# that name: without a serial, a second writer of this process in the same second (a run resumed at
# once) would erase the first one's scalars. The serial is zero-padded so that the names sort in the
# order the writers were made (TensorBoard reads a directory's files in name order: ".10." would
# come before ".9.").
_WRITER_SERIALS = itertools.count()


class SummaryWriter(tensorboardX.SummaryWriter):
  """Writes scalar summaries to one TensorBoard event file under `logdir`."""

  def __init__(self, logdir: str):
    # The writer thread flushes every second, so a crash loses at most the last second's scalars.
    super().__init__(logdir, flush_secs=1,
                     filename_suffix=f".{os.getpid()}.{next(_WRITER_SERIALS):06d}.specjax")

  def scalars(self, values: dict, step: int):
    """Writes all `values` at `step`."""
    for tag, value in values.items():
      self.add_scalar(tag, float(value), int(step))  # float(): numpy / jax scalars too

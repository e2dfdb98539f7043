"""SIGTERM (SLURM's warning before a time-limit kill or a preemption) ends training at the next epoch
boundary with its state saved, instead of losing the work since the last periodic save.

The state is saved only at epoch boundaries because that is where a resumed run makes exactly the
decisions of an uninterrupted one (stndt.train.checkpoint); an epoch must therefore fit in the grace
period between SIGTERM and SIGKILL (SLURM's KillWait, 30 s by default; ask for an earlier signal with
`--signal=TERM@300`, see README "On a SLURM cluster").
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

#: Exit status of a job ended by SIGTERM (128 + 15, as the shell reports it).
TERMINATED_EXIT = 143


class Terminated(SystemExit):
    """Training stopped on SIGTERM after saving its state; the rerun resumes from it."""

    def __init__(self) -> None:
        super().__init__(TERMINATED_EXIT)


class Preemption:
    """Context manager: while active, SIGTERM only sets `requested` (checked by the loop at every epoch
    boundary). Outside the main thread, where signal handlers cannot be set, it does nothing."""

    def __init__(self, log: logging.Logger) -> None:
        self.log, self.requested, self._old = log, False, None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.log.warning("SIGTERM received: stopping at the end of this epoch, after saving the state")

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)

    def stop_if_requested(self, save_state, epoch: int, state_path) -> None:
        """Save and stop (raise Terminated) when SIGTERM came."""
        if self.requested:
            save_state()
            self.log.warning(
                "terminated by SIGTERM after epoch %d: training state saved to %s; rerun the "
                "job to resume from it (nothing is lost)",
                epoch,
                state_path,
            )
            raise Terminated()

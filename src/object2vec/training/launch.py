"""``object2vec train --nproc N``: torchrun, without its traceback.

When a worker fails, ``torchrun`` stops the others and then reports the failure itself: an error
log line per worker and a ``ChildFailedError`` traceback with a table, after the worker has
already printed its one ``error:`` line. This launcher runs ``torch.distributed.run`` in-process
with that report turned off and exits with the failed worker's status (128 + N for a signal), so a
user's error reads the same with one process or many.

usage: python -m object2vec.training.launch [torchrun options] -m object2vec train ...
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    for name, logger in list(logging.root.manager.loggerDict.items()):  # each of torchrun's modules sets its own level
        if name.startswith("torch.distributed") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.CRITICAL)  # the workers report; torchrun would repeat it
    try:
        run(parse_args(argv if argv is not None else sys.argv[1:]))
    except ChildFailedError as e:
        _, failure = e.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
    except SignalException as e:  # we were stopped; torchrun has passed the signal on to the workers
        return 128 + int(e.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Ctrl-C that always reaches the command: a ``KeyboardInterrupt`` raised while Python runs a
garbage-collector callback (JAX registers one, ``_xla_gc_callback``) is printed as "Exception
ignored" and dropped, so a search interrupted at that moment would run on. Inside
:func:`delivered`, such a dropped interrupt is not printed and is raised again, 50 ms later,
from ordinary code."""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["delivered"]


def _raise(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def delivered() -> Iterator[None]:
    """Within the block, an interrupt swallowed by an "unraisable" context (a GC callback, a
    ``__del__``) is re-raised from the main thread's next bytecode instead of being lost;
    other unraisable errors are reported as before. Restores the previous hooks on exit; a
    no-op off the main thread or where ``SIGALRM`` does not exist."""
    if (threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "setitimer")):
        yield
        return
    previous_hook = sys.unraisablehook

    def hook(u: Any) -> None:
        if u.exc_type is not None and issubclass(u.exc_type, KeyboardInterrupt):
            signal.setitimer(signal.ITIMER_REAL, 0.05)  # raised again outside the callback
            return
        previous_hook(u)

    previous_alarm = signal.signal(signal.SIGALRM, _raise)
    sys.unraisablehook = hook
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        sys.unraisablehook = previous_hook

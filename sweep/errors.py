"""Errors the user fixes, and how the entry points report them.

Library code (core, sweep.runner, sweep.tracking) raises; only the entry points (sweep/main.py,
the Hydra launcher plugin, backtests/atm_volume.py) turn these into one line on stderr and exit
status 2, with no traceback.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from core import ConfigError
from sweep.heap import no_collection_at_exit


class UserError(Exception):
    """A problem the user must fix (bad config, unusable data, a full disk); the message is one line
    naming the key or file and what to do."""


def exit_with(message: str, code: int = 2) -> None:
    """One line on stderr and exit (no traceback)."""
    print(f"atmburst: {message}", file=sys.stderr)
    raise SystemExit(code)


INTERRUPTED = 130  # the shell's status for a command stopped by Ctrl-C (128 + SIGINT)
TERMINATED = 143  # ... and by SIGTERM (128 + 15): a scheduler, `timeout`, `kill`


class Terminated(KeyboardInterrupt):
    """SIGTERM: the command stops as on Ctrl-C (what finished is kept), with exit status 143."""


def raise_terminated(signum, frame) -> None:
    """A SIGTERM handler: stop the way Ctrl-C does."""
    raise Terminated


def stop_on_sigterm() -> None:
    """For entry points: SIGTERM raises Terminated instead of ending the process on the spot (Ray's start
    puts its own handler in place for the sweep's Ray calls, and sweep.fanout handles both while it
    waits on Ray). Only in the main thread, where Python handles signals."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_terminated)


class OutputThatOutlivesItsReader:
    """sys.stdout or sys.stderr for an entry point, going on when its reader has gone.

    A command piped into ``head`` (or a pager that was quit) loses its reader; the next write then
    raises BrokenPipeError, which in the middle of a run or a sweep would stop it there with a traceback.
    Instead the stream's file descriptor is pointed at os.devnull: the command finishes its work (files,
    MLflow runs, report) and ends with its usual status, and only the rest of its console output is lost."""

    def __init__(self, stream):
        self.stream = stream

    def _reader_gone(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.stream.fileno())
        finally:
            os.close(devnull)
        try:
            self.stream.flush()  # what was buffered for the closed pipe goes to os.devnull
        except OSError:
            pass

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._reader_gone()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def outlive_closed_output() -> None:
    """For entry points: sys.stdout and sys.stderr as OutputThatOutlivesItsReader (once; streams
    without a file descriptor, such as a test's capture, are left as they are)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, OutputThatOutlivesItsReader):
            continue
        try:
            stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
        setattr(sys, name, OutputThatOutlivesItsReader(stream))


def set_up_command() -> None:
    """What a command that runs backtests in its own process (``sweep/main.py``, ``backtests/atm_volume.py``)
    sets up first: no garbage collection at exit (sweep.heap), SIGTERM stopped like Ctrl-C, and output that
    outlives its reader."""
    no_collection_at_exit()
    stop_on_sigterm()
    outlive_closed_output()


@contextmanager
def reported_as_exit_status() -> Iterator[None]:
    """For entry points: a UserError or ConfigError inside becomes one line and exit status 2; Ctrl-C
    (SIGTERM) becomes one line and status 130 (143): what was finished before it is kept, since every
    file is written whole or not at all, and a sweep says what it kept before this line."""
    try:
        yield
    except UserError as exc:
        exit_with(str(exc))
    except ConfigError as exc:
        exit_with(f"config error: {exc}")
    except Terminated:
        exit_with("terminated (SIGTERM)", TERMINATED)
    except KeyboardInterrupt:
        exit_with("interrupted", INTERRUPTED)

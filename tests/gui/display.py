"""A display for Tk: the one in ``$DISPLAY``, or a virtual one (Xvfb) started for the tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


class NoDisplayError(Exception):
    """Neither ``$DISPLAY`` nor Xvfb: Tk cannot run here (the reason is the message)."""


@contextlib.contextmanager
def virtual_display() -> Iterator[str]:
    """``$DISPLAY`` if set, else an Xvfb display started here (and stopped on exit).

    Raises :class:`NoDisplayError` saying why when neither can be had.
    """
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise NoDisplayError("no $DISPLAY and no Xvfb to run Tk (apt-get install xvfb)")
    number = next(n for n in range(90, 400) if not Path(f"/tmp/.X{n}-lock").exists())
    name = f":{number}"
    process = subprocess.Popen(
        [xvfb, name, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise NoDisplayError(f"Xvfb did not start on {name}")
            time.sleep(0.05)
        os.environ["DISPLAY"] = name
        yield name
    finally:
        os.environ.pop("DISPLAY", None)
        process.terminate()
        process.wait(timeout=10)

"""A command run at a pseudo-terminal, and what a person would see on the screen afterwards.

``run_in_terminal`` gives the command a pty (stdin, stdout and stderr, with a window size, as a
terminal emulator would) and returns every byte it wrote; ``screen`` replays those bytes the way a
terminal draws them (``\\r`` returns to the start of the line, later text overwrites earlier), so
a progress bar that cleared itself leaves nothing behind. Used by the tests and by
``scripts/terminal_transcript.py``.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Sequence

_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(
    args: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None, columns: int = 110, timeout: float = 300
) -> tuple[int, str]:
    """``(exit status, everything written)`` of ``args`` run with a pseudo-terminal of ``columns`` columns."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(list(args), stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every copy of the terminal's other side is closed
                break
            if not data:
                break
            chunks.append(data)
        else:
            proc.kill()
        return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", errors="replace")
    finally:
        os.close(master)


def screen(raw: str) -> str:
    """The lines a terminal shows after drawing ``raw`` (trailing spaces dropped)."""
    lines: list[str] = []
    line: list[str] = []
    col = 0
    for token in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", raw):
        if not token or _CSI.fullmatch(token):
            continue  # cursor movement and colours: single-bar output needs none of them
        if token == "\r":
            col = 0
        elif token == "\n":
            lines.append("".join(line).rstrip())
            line, col = [], 0
        else:  # text overwrites what the line holds from the cursor on
            line[col : col + len(token)] = token
            col += len(token)
    if "".join(line).strip():
        lines.append("".join(line).rstrip())
    return "\n".join(lines)

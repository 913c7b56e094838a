"""The console entry point, run in a child process as a user runs it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_a_stop_signal_after_the_command_finished_does_not_replace_its_exit_code() -> None:
    # A supervisor that sends SIGTERM twice: the second one can arrive while the interpreter
    # finalises, when CPython has put the default action back on every Python-handled signal.
    script = textwrap.dedent(
        """
        import os, signal, sys, time
        sys.argv = ["tradeloop", "schemas", "list"]
        from tradeloop.cli import main
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
        sys.exit(code)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])

"""Test helpers for commands run as subprocesses in their own process group."""

import os
import signal
import subprocess


def interrupt(proc: subprocess.Popen) -> tuple[str, str]:
    """Ctrl-C as a terminal sends it (SIGINT to the whole process group); (stdout, stderr) once it has ended. A
    command that does not end in time is killed, and the test fails on its exit code."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

"""Fresh Jupyter kernels, forked from a pre-warmed process instead of started from scratch (POSIX).

Every batch run gets its own kernel process, as papermill's default does, but starting a Python kernel and
importing IPython, numpy, matplotlib and gnaexp costs about 1.5 s of CPU per run, which on a 2-core machine is
half of a run. A *zygote* process imports all of that once (and compiles the emulator's loops); each kernel is a
``fork()`` of it that has run nothing yet, so it starts with clean state and the imports already done. OpenVINO
is imported there too, without the usage event its model converter sends from a thread at import (see
``_import_openvino``): a fork carries no thread, so nothing imported before one may have started any. torch,
which only a run that builds a torch reference needs, is imported there once a kernel has imported it.

``ForkKernelManager`` is a jupyter_client kernel manager whose provisioner asks the zygote for the kernel
process. Where ``fork`` does not exist, or the zygote cannot start, kernels start the ordinary way.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.abc
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets import DottedObjectName, Type

# Imported by the zygote before any fork: what a kernel imports to start (ipykernel's debugger support, the
# shell's inspector, completer and magics among it), what every gnaexp notebook needs and the notebooks' views
# (with what their first run imports: the IR reader, threadpoolctl). Nothing here may start a Python thread
# (openvino is imported apart: ``_import_openvino``).
PRELOAD = ("faulthandler", "ipykernel.kernelapp", "ipykernel.debugger", "IPython.display", "IPython.core.oinspect",
           "IPython.core.completerlib", "IPython.core.debugger", "IPython.core.logger", "IPython.utils.wildcard",
           "IPython.extensions.storemagic", "tornado.platform.asyncio", "jupyter_client.localinterfaces", "numpy",
           "matplotlib.figure", "matplotlib.backends.backend_agg", "PIL.Image", "encodings.cp437",
           "xml.etree.ElementTree", "threadpoolctl", "gnaexp.present.report", "gnaexp.present.plots",
           "gnaexp.present.summary", "gnaexp.present.pot_view", "gnaexp.present.diagnose_view",
           "gnaexp.present.vad_view", "gnaexp.present.model_view", "gnaexp.present.layers_view",
           "gnaexp.layers.compare", "gnaexp.diagnose.verdicts", "gnaexp.diagnose.ladder", "gnaexp.parameters",
           "gnaexp.emulator", "gnaexp.emulator.sweep", "gnaexp.emulator.support", "gnaexp.emulator.state_layers",
           "gnaexp.backends.gna_emu", "gnaexp.backends.openvino_runner", "gnaexp.backends.torch_runner",
           "gnaexp.backends.imported", "gnaexp.models.nncf_quantize", "gnaexp.vad.run")
# Imported once openvino is (``_import_openvino``): they import it themselves.
WITH_OPENVINO = ("gnaexp.models.ir", "gnaexp.models.model_files")
# torch and the nets built with it (1.2 s of import; no thread), imported by the zygote once a kernel imports
# torch: a run that builds a torch reference or streams Silero VAD through torch. The kernels after it find
# them imported; a batch whose torch references are all cached never pays for them.
ON_DEMAND = ("torch", "gnaexp.models.forum_nets", "gnaexp.models.silero")
# What tells that a kernel imports torch: its compiled core, which torch's own import loads and a mere look for
# torch (the torch backend's check) does not.
TORCH_IMPORTED = "torch._C"

# OpenBLAS's worker threads (NumPy's and SciPy's) busy-wait 2**28 cycles, about 0.1 s of a core, after each
# threaded call and after they start (a kernel starts them anew: a fork carries no thread) before they sleep:
# CPU taken from the kernel beside it, a tenth of a run's. 4 (2**4 cycles, OpenBLAS's least) has them sleep at
# once. Read when OpenBLAS loads, so it is given to the zygote at its start; the thread count, and so every
# result, stays as it was. A value the user set is kept.
OPENBLAS_THREAD_TIMEOUT = "4"
RECONNECT_MS = 5  # how soon a client's socket retries a kernel that is not listening yet (ReadyClient)
FORK_TIMEOUT_S = 300.0  # a fork request waits this long at most (the zygote may still be importing)

_ZYGOTE: "Zygote | None" = None


class Zygote:
    """A zygote process, reached through its Unix socket: one connection per kernel, a JSON request line in and
    the kernel's pid (or a refusal) back. The process that started it holds ``proc`` and ends it; the other
    processes of a batch (the pool's workers) attach to the same zygote by its socket path, so its imports are
    done once per batch rather than once per worker."""

    def __init__(self, path: str, proc: subprocess.Popen | None = None) -> None:
        self.path, self.proc = path, proc

    @classmethod
    def start(cls, log: str | None = None) -> "Zygote":
        import tempfile

        path = os.path.join(tempfile.mkdtemp(prefix="gnaexp-zygote-"), "socket")
        err = open(log, "ab") if log else None  # noqa: SIM115 — the zygote gets its own copy; ours closes below
        try:
            env = {"OPENBLAS_THREAD_TIMEOUT": OPENBLAS_THREAD_TIMEOUT, **os.environ}
            proc = subprocess.Popen([sys.executable, "-m", "gnaexp.batch.forkserver", path], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, cwd=os.getcwd(), env=env)
        finally:
            if err:
                err.close()
        assert proc.stdout is not None
        # It answers once its socket listens (a fraction of a second); its imports then run while the caller
        # goes on, and fork requests wait in the socket's queue until they are done.
        if proc.stdout.readline().strip() != b"listening":
            proc.kill()
            proc.wait()
            raise OSError("the kernel zygote did not start")
        return cls(path, proc)

    def fork(self, argv: list[str], cwd: str, env: dict[str, str]) -> int | None:
        """The pid of a new kernel, or None when the zygote cannot fork one (the kernel then starts the ordinary
        way)."""
        import socket

        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(FORK_TIMEOUT_S)
                conn.connect(self.path)
                conn.sendall((json.dumps({"argv": argv, "cwd": cwd, "env": env}) + "\n").encode())
                answer = conn.makefile("rb").readline().decode().strip()
        except OSError:
            return None
        return int(answer) if answer.isdigit() else None

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)


def new_zygote(log: str | None = None) -> Zygote | None:
    """A started zygote, or None where ``fork`` does not exist, ``GNAEXP_NO_ZYGOTE=1`` turns it off, or it
    cannot start. The caller ends it (``close``); for other processes to use it, they ``attach`` to its path."""
    if not hasattr(os, "fork") or os.environ.get("GNAEXP_NO_ZYGOTE"):
        return None
    try:
        return Zygote.start(log)
    except OSError:
        return None


def start_zygote(log: str | None = None) -> Zygote | None:
    """Start a zygote (``new_zygote``) and fork this process's kernels from it."""
    global _ZYGOTE
    _ZYGOTE = new_zygote(log)
    return _ZYGOTE


def attach(path: str) -> None:
    """Fork this process's kernels from the zygote another process started (``Zygote.path``)."""
    global _ZYGOTE
    _ZYGOTE = Zygote(path)


def manager_class() -> type | None:
    """ForkKernelManager if this process has a zygote, else None (papermill's default)."""
    return ForkKernelManager if _ZYGOTE is not None else None


class _ForkedKernel:
    """The subset of ``subprocess.Popen`` that LocalProvisioner uses, for a process that is not our child."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = 0  # the zygote reaps its children; the exit status is not ours to see
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        return self.returncode or 0

    def send_signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkProvisioner(LocalProvisioner):  # type: ignore[misc]
    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        same_python = cmd[:3] in ([sys.executable, "-m", "ipykernel_launcher"], ["python", "-m", "ipykernel_launcher"])
        if _ZYGOTE is None or not same_python:
            return await super().launch_kernel(cmd, **kwargs)
        env = {str(k): str(v) for k, v in (kwargs.get("env") or os.environ).items()}
        cwd = str(kwargs.get("cwd") or os.getcwd())
        loop = asyncio.get_running_loop()  # the zygote may still be importing: wait off the event loop
        pid = await loop.run_in_executor(None, _ZYGOTE.fork, cmd[3:], cwd, env)
        if pid is None:
            return await super().launch_kernel(cmd, **kwargs)
        kernel = _ForkedKernel(pid)
        # LocalProvisioner types ``process`` as a Popen but uses only the subset _ForkedKernel has
        self.process = kernel  # type: ignore[assignment]
        self.pid = self.pgid = kernel.pid  # the kernel leads its own session
        self.cwd = cwd
        return self.connection_info

    async def kill(self, restart: bool = False) -> None:
        # jupyter_client polls for the end of a killed kernel every 0.1 s; the zygote reaps it within
        # milliseconds, so waiting for that here saves the first poll's sleep on every run.
        process = self.process
        await super().kill(restart)
        end = time.monotonic() + 1.0
        while process is not None and process.poll() is None and time.monotonic() < end:
            await asyncio.sleep(0.002)


class ReadyClient(AsyncKernelClient):  # type: ignore[misc]
    """A kernel client that is ready once the kernel has answered kernel_info and IOPub has delivered a message.

    jupyter_client's client then drains IOPub until it has been silent for 0.2 s, a fixed wait on every kernel
    start. Whatever a drain would discard is a status message of the kernel_info request; nbclient handles only
    IOPub messages whose parent is its own request, so they need no waiting for.

    Its sockets retry a refused connection after RECONNECT_MS rather than ZMQ's default 100 ms: they connect
    as soon as the kernel is forked, which binds its ports some 50 ms later.
    """

    def start_channels(self, *args: Any, **kwargs: Any) -> None:
        import zmq

        self.context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)  # this client's own context: its sockets only
        super().start_channels(*args, **kwargs)

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:  # a message on IOPub proves its subscription is live; messages sent before would be lost
                    await self.iopub_channel.get_msg(timeout=0.2)
                except Empty:
                    pass
                else:
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")


class ForkKernelManager(AsyncKernelManager):  # type: ignore[misc]
    """AsyncKernelManager whose kernels come from the zygote when there is one."""

    client_class = DottedObjectName("gnaexp.batch.forkserver.ReadyClient")
    client_factory = Type(klass=ReadyClient)

    async def _async_pre_start_kernel(self, **kw: Any) -> Any:
        if self.provisioner is None:
            import uuid

            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            self.provisioner = ForkProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)


# --- the zygote's side ------------------------------------------------------------------------------------------

def _import_all(names: tuple[str, ...]) -> bool:
    """Import ``names`` (a missing optional one only costs its import later) and keep what they made out of the
    collector's reach (``gc.freeze``); whether forking is still safe (no thread started)."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001
            pass
    gc.freeze()
    return threading.active_count() == 1


def preload() -> bool:
    """What every kernel would otherwise do for itself, done once in the zygote before any fork; whether forking
    is safe after it (no thread started)."""
    # What a kernel started by jupyter_client would see before matplotlib is imported.
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path.pop(0)
    _import_all(PRELOAD)
    _import_openvino()
    _import_all(WITH_OPENVINO)
    try:  # the emulator's compiled loops and common PWL designs, once here rather than once per kernel
        from gnaexp.emulator import activations, native_plan

        native_plan.warm_up()  # and the loops it calls (native.warm_up)
        activations.warm_up()
    except Exception:  # noqa: BLE001 — a kernel then compiles on first use
        pass
    try:  # what matplotlib loads on first use (fonts, the mathtext parser, tick machinery); the floor sweep's ticks
        from gnaexp.emulator.sweep import FLOOR_SCALE_FACTORS
        from gnaexp.present import plots

        plots.warm_up(FLOOR_SCALE_FACTORS)
    except Exception:  # noqa: BLE001
        pass
    try:  # what a record says of this machine (package metadata, OpenVINO's devices: each process asks once)
        from gnaexp.backends import openvino_runner
        from gnaexp.core import environment

        environment.capture()
        openvino_runner.available_devices()
    except Exception:  # noqa: BLE001 — a kernel then asks itself
        pass
    try:  # the addresses a kernel lists for its connection file (psutil's walk over the interfaces)
        from jupyter_client import localinterfaces

        localinterfaces.localhost()
    except Exception:  # noqa: BLE001
        pass
    # Everything made so far is shared by every kernel: moved out of the collector's reach, a kernel's
    # collections neither walk it (a full collection would visit every object the imports made) nor write to
    # its pages (which would copy them, page by page, out of the shared memory). About 0.3 s a kernel.
    return _import_all(())


def _serve(path: str) -> None:
    import select
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(128)
    print("listening", flush=True)
    safe = preload()
    if not safe:
        print("threads started during preload; forking would be unsafe: kernels start the ordinary way",
              file=sys.stderr, flush=True)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels are reaped automatically
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watched: list[socket.socket | int] = [server, 0]  # the socket, and stdin: its end means the caller is gone
    while True:
        readable, _, _ = select.select(watched, [], [])
        if 0 in readable and not os.read(0, 1):  # the process that started this zygote is gone
            break
        if server not in readable:
            continue
        conn, _ = server.accept()
        with conn:
            try:
                request = json.loads(conn.makefile("rb").readline())
            except ValueError:
                continue
            if request.get("preload"):  # a kernel imported torch: the kernels to come will have it
                safe = _import_all(ON_DEMAND) and safe
                continue
            if not safe:
                conn.sendall(b"unsafe\n")
                continue
            pid = os.fork()
            if pid == 0:
                server.close()
                conn.close()
                _become_kernel(request, path)
            conn.sendall(f"{pid}\n".encode())
    server.close()


def _import_openvino() -> None:
    """Import openvino (0.1–0.3 s a kernel otherwise) without starting a thread.

    Its model converter (``openvino.tools.ovc``, imported with ``openvino``) sends a usage event at import
    through ``openvino_telemetry``, from a thread pool that would make forking unsafe. With that package
    unimportable while openvino loads, the converter takes OpenVINO's own stand-in, as where it is not
    installed: kernels of a batch send no such event. openvino itself starts no thread at import.
    """
    blocked = "openvino_telemetry" not in sys.modules
    if blocked:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # import then raises ImportError
    try:
        import openvino  # noqa: F401
    except Exception:  # noqa: BLE001 — a kernel then imports it itself, and says what is wrong
        pass
    finally:
        if blocked and sys.modules.get("openvino_telemetry", 0) is None:
            del sys.modules["openvino_telemetry"]


class _AskForTorch(importlib.abc.MetaPathFinder):
    """In a kernel, once it imports torch: asks the zygote at ``path`` to import ``ON_DEMAND`` for the kernels to
    come (without waiting for it), then steps aside."""

    def __init__(self, path: str) -> None:
        self.path = path

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == TORCH_IMPORTED:
            import socket

            sys.meta_path.remove(self)
            with suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(self.path)
                conn.sendall(b'{"preload": true}\n')
        return None  # the import goes on as usual


def _become_kernel(request: dict[str, Any], path: str) -> None:
    code = 0
    try:
        if ON_DEMAND[0] not in sys.modules:
            sys.meta_path.insert(0, _AskForTorch(path))
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the kernel's own subprocesses must be waitable
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # interruptible whatever its worker blocks
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(2, 1)  # fd 1 is the pipe to the process that started the zygote
        os.close(devnull)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # The kernel watches the zygote and exits when it goes away (the zygote ends with its batch worker, also
        # when a Ctrl-C terminates the pool). Given on the command line: the JPY_PARENT_PID default was read when
        # the zygote imported ipykernel, before this fork.
        parent = str(os.getppid())
        os.environ["JPY_PARENT_PID"] = parent
        # No input history: a batch kernel runs one notebook and needs no history database (a thread of its own
        # and a sqlite file shared by every kernel of the user).
        argv = list(request["argv"]) + [f"--IPKernelApp.parent_handle={parent}", "--HistoryManager.enabled=False"]
        sys.argv = [sys.executable] + argv
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


if __name__ == "__main__":
    _serve(sys.argv[1])

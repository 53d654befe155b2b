"""Start-up: the wall time of short commands, process start included, against their targets.

Times, each as a fresh process run several times after one untimed warm-up: ``python -c pass`` (the floor),
``gnaexp --help``, ``gnaexp devices`` and ``gnaexp diagnose conv --observed FILE`` with the torch reference of the
net already cached (the first, untimed run fills the bench's own cache folder). FILE is the emulated output of
the net at the configured scale factor, saved once before timing. Children write and read their bytecode in a
folder of the bench's own, as an installed package does (even where PYTHONDONTWRITEBYTECODE is set), so that
compiling sources is not timed. Prints each command's median and best; ``--importtime`` adds what the diagnosis
still imports, the slowest first. Run: python bench/startup.py [--repeat 7] [--source CHECKOUT] [--importtime]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"gnaexp --help": 0.3, "gnaexp diagnose conv --observed FILE": 1.0}


def _env(source: Path, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(source), PYTHONPYCACHEPREFIX=str(work / "bytecode"), GNAEXP_CACHE=str(work / "cache"))
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[1:])} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return took


def _observed(env: dict[str, str], work: Path) -> str:
    """The conv net's emulated output, saved as the device output the diagnosis is given (made once, untimed)."""
    script = ("import sys, numpy as np\nfrom gnaexp import experiment\nfrom gnaexp.emulator import emulate\n"
              "config = experiment.ExperimentConfig(experiment='conv')\n"
              "model, feed, _, _ = experiment.reference_run(config)\n"
              "np.save(sys.argv[1], emulate(model.ir_xml, feed, settings=experiment.gna_settings(config))"
              ".outputs['output'])\n")
    subprocess.run([sys.executable, "-c", script, "observed.npy"], env=env, cwd=work, check=True)
    return "observed.npy"


def _import_profile(argv: list[str], env: dict[str, str], cwd: Path, top: int) -> list[str]:
    """Where one run's import time goes (``python -X importtime``): each package's own time (its modules' self
    times summed), the largest first."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    own: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if line.startswith("import time:") and len(fields) == 3 and fields[0].strip().isdigit():
            package = fields[2].strip().split(".")[0]
            own[package] = own.get(package, 0.0) + int(fields[0]) / 1000.0
    ranked = sorted(own.items(), key=lambda kv: -kv[1])
    return [f"  {sum(own.values()):7.0f} ms  all imports"] + [f"  {ms:7.0f} ms  {name}" for name, ms in ranked[:top]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="timed runs of each command (default 7)")
    ap.add_argument("--source", default=str(ROOT), help="the checkout whose gnaexp is timed (default: this one)")
    ap.add_argument("--importtime", type=int, default=0, metavar="N",
                    help="also list the N slowest imports of the diagnosis")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gnaexp-startup-") as tmp:
        work = Path(tmp)
        env = _env(Path(args.source).resolve(), work)
        observed = _observed(env, work)
        gnaexp = [sys.executable, "-m", "gnaexp"]
        commands = {
            "python -c pass (the floor)": [sys.executable, "-c", "pass"],
            "gnaexp --help": gnaexp + ["--help"],
            "gnaexp devices": gnaexp + ["devices"],
            "gnaexp diagnose conv --observed FILE": gnaexp + ["diagnose", "conv", "--observed", observed],
        }
        print(f"start-up, {args.repeat} runs each after a warm-up, process start included; {os.cpu_count()} cores; "
              f"gnaexp from {Path(args.source).resolve().name}/")
        for label, argv in commands.items():
            _run(argv, env, work)  # warm-up: bytecode written, caches filled
            times = [_run(argv, env, work) for _ in range(args.repeat)]
            median = statistics.median(times)
            target = TARGETS.get(label)
            verdict = "" if target is None else f"   target ≤ {target:.1f} s: {'met' if median <= target else 'NOT met'}"
            print(f"{label:<40} median {median:6.3f} s   best {min(times):6.3f} s{verdict}")
        if args.importtime:
            print("what the diagnosis's imports cost, by package:")
            print("\n".join(_import_profile(commands["gnaexp diagnose conv --observed FILE"], env, work,
                                            args.importtime)))


if __name__ == "__main__":
    main()

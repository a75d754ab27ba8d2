"""Start a command as N processes of one run on this machine: tests, laptops, one host.

    python -m hamon_nnx.launch -n 2 -- hamon-nnx sample configs/... -o out
    python -m hamon_nnx.launch -n 2 --local-devices 2 -- python my_script.py

Each process gets `HAMON_NNX_COORDINATOR` (127.0.0.1 and a free port),
`HAMON_NNX_NUM_PROCESSES`, `HAMON_NNX_PROCESS_ID` and, with
`--local-devices K`, `HAMON_NNX_LOCAL_DEVICES` (K CPU devices each); the
CLI and `hn.distributed.initialize()` read them. Output lines are prefixed
with the process index (`[1] ...`). The launcher's exit status is the first
non-zero one of the processes (0 when all succeed); once one process fails,
the others get `--grace` seconds to stop on their own, then are terminated,
so a run never waits forever on a dead peer.

On a cluster, use its own launcher (`srun`, `mpirun`): `initialize()`
finds SLURM and Open MPI by itself.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from typing import cast


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pipe(stream, index: int, out) -> None:
    for line in iter(stream.readline, ""):
        out.write(f"[{index}] {line}")
        out.flush()
    stream.close()


def _report(index: int, code: int, seconds: float, how: str = "") -> None:
    if code != 0:
        print(f"hamon_nnx.launch: process {index} {how}exited with status {code} after "
              f"{seconds:.1f} s", file=sys.stderr, flush=True)  # fmt: skip


def launch(command: list[str], n: int, local_devices: int | None = None, grace: float = 60.0,
           prefix: bool = True) -> int:  # fmt: skip
    """Run `command` as `n` processes of one run; return the exit status (see module doc)."""
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    if not command:
        raise ValueError("no command: python -m hamon_nnx.launch -n 2 -- COMMAND ...")
    port = free_port()
    procs, threads = [], []
    for index in range(n):
        env = dict(os.environ)
        env["HAMON_NNX_COORDINATOR"] = f"127.0.0.1:{port}"
        env["HAMON_NNX_NUM_PROCESSES"] = str(n)
        env["HAMON_NNX_PROCESS_ID"] = str(index)
        if local_devices is not None:
            env["HAMON_NNX_LOCAL_DEVICES"] = str(local_devices)
        pipe = subprocess.PIPE if prefix else None
        proc = subprocess.Popen(command, env=env, stdout=pipe, stderr=subprocess.STDOUT if
                                prefix else None, text=True)  # fmt: skip
        procs.append(proc)
        if prefix:
            t = threading.Thread(target=_pipe, args=(proc.stdout, index, sys.stdout), daemon=True)
            t.start()
            threads.append(t)
    status, failed_at, start = 0, None, time.monotonic()
    reported, terminated = set(), set()
    while any(p.poll() is None for p in procs):
        for index, p in enumerate(procs):
            code = p.poll()
            if code is not None and index not in reported:
                reported.add(index)
                _report(index, code, time.monotonic() - start)
            if code not in (None, 0) and status == 0:
                status, failed_at = code, time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > grace:
            for index, p in enumerate(procs):
                if p.poll() is None:
                    p.terminate()
                    terminated.add(index)
            break
        time.sleep(0.05)
    for index, p in enumerate(procs):
        try:
            code = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            code = p.wait()
        if index not in reported:
            how = "terminated by the launcher; " if index in terminated else ""
            _report(index, code, time.monotonic() - start, how)
        if code != 0 and status == 0:
            status = code
    for t in threads:
        t.join(timeout=5)
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hamon_nnx.launch", description=cast(str, __doc__).split("\n\n")[0]
    )
    parser.add_argument("-n", "--processes", type=int, default=2, help="processes (2)")
    parser.add_argument("--local-devices", type=int, default=None,
                        help="CPU devices per process (default: JAX's, one)")  # fmt: skip
    parser.add_argument("--grace", type=float, default=60.0,
                        help="seconds the others get once one process fails (60)")  # fmt: skip
    parser.add_argument("--no-prefix", action="store_true", help="leave output lines as they are")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        return launch(command, args.processes, args.local_devices, args.grace,
                      prefix=not args.no_prefix)  # fmt: skip
    except ValueError as err:
        parser.error(str(err))
        return 2


if __name__ == "__main__":
    sys.exit(main())

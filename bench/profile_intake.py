"""Where a webhook's CPU goes: `ecomflux web` under wrk with one body size, sampled by py-spy.

    python -m bench.profile_intake [KB] [sqlite|postgres]

Starts the real server (as bench/intake.py does), drives it with 200 senders, records every worker
process with py-spy (only samples holding the GIL: the Python CPU the workers contend for) (`pip install py-spy`; needs ptrace rights) and prints the functions holding the
most samples, self time and total, as a share of all samples. Also prints CPU per request.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench import intake


def _top(path: Path, limit: int = 25) -> None:
    """Aggregate py-spy's collapsed stacks into self and total shares per function."""
    own, total, samples = collections.Counter(), collections.Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")" if " (" in f else f
                  for f in stack.split(";")]
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    print(f"{samples} samples; self time:")
    for frame, n in own.most_common(limit):
        print(f"  {100 * n / samples:5.1f}%  {frame}")
    print("total time (incl. callees):")
    for frame, n in total.most_common(limit + 15):
        print(f"  {100 * n / samples:5.1f}%  {frame}")


def main(argv: list[str]) -> int:
    kb = int(argv[0]) if argv else 12
    kind = argv[1] if len(argv) > 1 else "postgres"
    spy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    if not spy:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    label, body = intake.bench_bodies([kb])[0]
    workdir = Path(tempfile.mkdtemp(prefix="ecomflux-profile-"))
    env = intake._with_body(intake.bench_env(intake.prepare_database(kind, workdir), workdir), workdir, body, "p")
    intake.setup_app_state(env)
    server = intake.Server("ecomflux_app.wsgi:app", env)
    try:
        intake.run_wrk(server.port, env, duration="3s", run_id="profile-warm")
        workers = [p for p in intake._process_tree(server.proc.pid) if p != server.proc.pid]
        outputs = [workdir / f"spy-{pid}.txt" for pid in workers]
        spies = [subprocess.Popen([spy, "record", "-p", str(pid), "-d", "8", "-r", "200", "-f", "raw", "-o", str(out),
                                   "--gil"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for pid, out in zip(workers, outputs)]
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(
            intake.run_wrk(server.port, env, duration="10s", run_id="profile", server=server)))
        runner.start()
        for proc in spies:
            proc.wait()
        runner.join()
    finally:
        server.stop()
    print(f"{label} body, {kind}: {result['rps']} req/s, p99 {result['p99_ms']} ms, server CPU "
          f"{result['server_cpu_ms_per_request']} ms/request, database {result['database_cpu_ms_per_request']} ms/request")
    merged = workdir / "merged.txt"
    merged.write_text("\n".join(out.read_text() for out in outputs if out.exists()))
    _top(merged)
    if os.environ.get("KEEP_PROFILE"):
        print("stacks:", merged)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

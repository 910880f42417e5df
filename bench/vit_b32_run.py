#!/usr/bin/python3
"""bench/vit_b32_run.py: runs one command of bench/vit_b32.sh and measures it the same way for
clasp and PyTorch: wall time, and the peak memory of its whole process tree (a DataLoader's
workers are processes, clasp's decode workers are threads), sampled every --interval seconds
from /proc: the sum of RSS and the sum of PSS (/proc/PID/smaps_rollup: pages shared between the
forked workers and the parent counted once in total). Also the kernel's peak RSS of the largest
single process (getrusage RUSAGE_CHILDREN, what GNU time reports).

    vit_b32_run.py --log FILE [--interval 0.1] -- CMD ARGS...

Prints one JSON line: {"rc", "wall_s", "peak_tree_rss_mib", "peak_tree_pss_mib",
"maxrss_mib"}; the command's stdout and stderr go to FILE. Exit status: the command's.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    kids, out, todo = children_map(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def mem_kib(pid):
    """(rss, pss) of one process in KiB, 0 when it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")
    peak = {"rss": 0, "pss": 0}
    with open(a.log, "w") as log:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample():
            while not done.is_set():
                rss = pss = 0
                for q in tree(p.pid):
                    r, s = mem_kib(q)
                    rss += r
                    pss += s
                peak["rss"] = max(peak["rss"], rss)
                peak["pss"] = max(peak["pss"], pss)
                done.wait(a.interval)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        rc = p.wait()
        wall = time.perf_counter() - t0
        done.set()
        th.join()
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"rc": rc, "wall_s": wall, "peak_tree_rss_mib": peak["rss"] / 1024,
                      "peak_tree_pss_mib": peak["pss"] / 1024, "maxrss_mib": maxrss / 1024}),
          flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())

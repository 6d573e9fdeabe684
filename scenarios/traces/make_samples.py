#!/usr/bin/env python3
"""Writes the synthetic sample traces in this directory.

    python3 scenarios/traces/make_samples.py

The samples imitate the *layout* of the public traces (see README.md) with made-up values; nothing is
copied from the real datasets. Each sample has its own `random.Random(7)`, so the output is the same
on every run and changing one sample does not change the others.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def hashed_id(rng: random.Random, length: int = 64) -> str:
    """A string shaped like the traces' anonymised IDs (random, not a hash of anything)."""
    return "".join(rng.choice(B64) for _ in range(length))


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def write(name: str, lines: list[str]) -> None:
    with open(HERE / name, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{name}: {len(lines)} lines")


# --- Azure Public Dataset vmtable.csv (V1 layout) ---------------------------------------------------

AZURE_MEMORY_GB = {  # cores -> memory sizes (GB) of plausible VM sizes
    1: [0.75, 1.75, 2, 3.5],
    2: [3.5, 4, 7, 8],
    4: [7, 8, 14, 16],
    8: [14, 16, 28, 32],
    16: [28, 32, 56, 64],
    24: [32, 48, 64],
}
AZURE_CORE_WEIGHTS = {1: 30, 2: 30, 4: 20, 8: 12, 16: 5, 24: 3}


def azure(rows: int = 300) -> None:
    rng = random.Random(7)
    subscriptions = [hashed_id(rng) for _ in range(30)]
    deployments = {s: [hashed_id(rng) for _ in range(rng.randint(1, 4))] for s in subscriptions}
    lines = []
    for _ in range(rows):
        sub = rng.choice(subscriptions)
        cores = rng.choices(list(AZURE_CORE_WEIGHTS), weights=list(AZURE_CORE_WEIGHTS.values()))[0]
        memory = rng.choice(AZURE_MEMORY_GB[cores])
        created = rng.randrange(0, 86_400, 300)  # 5-minute granularity, within 24 h
        lifetime = max(300, round(log_uniform(rng, 300, 86_400) / 300) * 300)  # 5 min .. 1 day
        deleted = created + lifetime
        avg = round(rng.uniform(0.5, 60), 6)
        p95 = round(min(100.0, avg * rng.uniform(1.2, 3.0)), 6)
        peak = round(min(100.0, p95 * rng.uniform(1.0, 1.6)), 6)
        category = rng.choices(["Interactive", "Delay-insensitive", "Unknown"], weights=[3, 4, 3])[0]
        lines.append(
            f"{hashed_id(rng)},{sub},{rng.choice(deployments[sub])},{created},{deleted},"
            f"{peak},{avg},{p95},{category},{cores},{memory}"
        )
    rng.shuffle(lines)  # the real table is not ordered by creation time either
    write("azure-vmtable-sample.csv", lines)


# --- Google cluster-data 2011 task_events -----------------------------------------------------------

SUBMIT, SCHEDULE, EVICT, FINISH, KILL = 0, 1, 2, 4, 5
TRACE_START_US = 600_000_000  # the 2011 trace's first events after "before the trace" (0) are at 600 s
TRACE_END_US = TRACE_START_US + 3 * 3600 * 1_000_000
AFTER_END_US = 2**63 - 1


def google(tasks_wanted: int = 300) -> None:
    rng = random.Random(7)
    events: list[tuple[int, int, str]] = []  # (time, sequence, line)

    def emit(time, job, task, machine, event, user, sclass, prio, cpu, mem, disk, diff, drop_request=False):
        cpu_s, mem_s = ("", "") if drop_request else (repr(cpu), repr(mem))
        machine_s = "" if machine is None else str(machine)
        line = f"{time},,{job},{task},{machine_s},{event},{user},{sclass},{prio},{cpu_s},{mem_s},{disk:.6f},{diff}"
        events.append((time, len(events), line))

    machines = [rng.randrange(1_000_000, 400_000_000) for _ in range(40)]
    users = [hashed_id(rng, 44) for _ in range(12)]
    job_id = 6_251_000_000
    tasks = 0
    while tasks < tasks_wanted:
        job_id += rng.randrange(1, 5000)
        n = min(rng.choice([1, 1, 1, 2, 3, 4, 6, 8, 12]), tasks_wanted - tasks)
        tasks += n
        before_trace = tasks <= 20  # the first jobs were submitted before the trace started
        submit = 0 if before_trace else rng.randrange(TRACE_START_US, TRACE_END_US - 600_000_000)
        user, sclass, prio = rng.choice(users), rng.randrange(4), rng.randrange(12)
        cpu = rng.choice([0.00625, 0.0125, 0.025, 0.03125, 0.0625, 0.125, 0.25, 0.5])
        mem = round(rng.uniform(0.001, 0.08), 5)
        disk = round(rng.uniform(0.00001, 0.0005), 6)
        diff = 1 if rng.random() < 0.1 else 0
        for index in range(n):
            t = submit if before_trace else submit + rng.randrange(0, 2_000_000)
            common = (job_id, index, user, sclass, prio, cpu, mem, disk, diff)
            for attempt in range(3):
                job, task, *rest = common
                emit(t, job, task, None, SUBMIT, *rest, drop_request=attempt > 0 and rng.random() < 0.5)
                machine = rng.choice(machines)
                t += 0 if before_trace and attempt == 0 else rng.randrange(50_000, 30_000_000)
                emit(t, job, task, machine, SCHEDULE, *rest, drop_request=rng.random() < 0.3)
                t += int(log_uniform(rng, 30, 7200) * 1_000_000)
                outcome = rng.choices([FINISH, KILL, EVICT], weights=[75, 15, 10])[0]
                if t > TRACE_END_US:
                    if rng.random() < 0.2:  # a few events stamped "after the trace ended"
                        emit(AFTER_END_US, job, task, machine, FINISH, *rest)
                    break  # still running when the trace ends
                emit(t, job, task, machine, outcome, *rest, drop_request=rng.random() < 0.3)
                if outcome != EVICT:
                    break
                t += rng.randrange(1, 5_000_000)  # evicted tasks are re-submitted
    events.sort()
    write("google-task-events-sample.csv", [line for _, _, line in events])


# --- NovaCron simple format -------------------------------------------------------------------------

def simple() -> None:
    rng = random.Random(7)
    horizon = 6 * 3600.0
    arrivals = []
    t = rng.expovariate(350 / horizon)  # background: about 350 VMs over 6 h
    while t < horizon:
        arrivals.append(t)
        t += rng.expovariate(350 / horizon)
    burst_start, burst_len = 10_000.0, 1_600.0  # a burst of 150 VMs in ~27 minutes mid-way
    arrivals += [burst_start + rng.uniform(0, burst_len) for _ in range(150)]
    arrivals.sort()
    lines = [
        "# Synthetic NovaCron trace made by make_samples.py: 6 h, a burst of VMs between 10000 s and 11600 s.",
        "# An empty lifetime_s means the VM runs until the end of the simulation.",
        "arrival_s,lifetime_s,vcpu,memory_mib",
    ]
    for arrival in arrivals:
        lifetime = "" if rng.random() < 0.1 else f"{log_uniform(rng, 60, 4 * 3600):.1f}"
        vcpu = rng.choices([1, 2, 4, 8, 16], weights=[25, 35, 25, 10, 5])[0]
        memory = vcpu * rng.choice([1024, 2048, 4096, 8192])
        lines.append(f"{arrival:.3f},{lifetime},{vcpu},{memory}")
    write("simple-sample.csv", lines)


if __name__ == "__main__":
    azure()
    google()
    simple()

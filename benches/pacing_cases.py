#!/usr/bin/env python3
"""Issue 12's pacing cases, each against its own `cfrevoke sandbox` on loopback.

Every case scales Cloudflare's quota down to 100 requests per 20 s (and its
5-minute block to 20 s), runs the release binary's `cfrevoke revoke` against
it, and reports what the sandbox saw: 429s served, the busiest window against
the quota, and the run's wall time against the ideal. The ideal is the rows
(plus any other consumer's bursts) at the rate the enforced quota leaves after
a steady consumer: rows / (quota - load x window) x window.

These are figures, not a test: nothing here runs under `cargo test`. A full
table takes about four minutes with the default --jobs 4.

    python3 benches/pacing_cases.py                      # every case, once
    python3 benches/pacing_cases.py --case consumer-30 --repeat 3
    python3 benches/pacing_cases.py --label after --readme README.md

With --readme the table between the README's pacing-cases markers gets a
column named --label (replaced if it is there already) instead of being
printed, so "before" and "after" figures sit side by side.
"""

import argparse
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

QUOTA = 100
WINDOW_S = 20
LATENCY = ["--latency-mean", "300ms", "--latency-max", "3s"]
TABLE_START = "<!-- pacing-cases -->"
TABLE_END = "<!-- /pacing-cases -->"


@dataclass
class Case:
    name: str
    what: str
    #: Rows of the measured run; for `pair`, of each of the two processes.
    rows: int
    window_kind: str = "sliding"
    #: Requests per second another consumer spends all along.
    steady: float = 0.0
    #: (requests, seconds after the sandbox starts) of another consumer.
    bursts: list = field(default_factory=list)
    enforced: int | None = None
    extra_sandbox: list = field(default_factory=list)
    rate: str = "auto"
    #: single: one run; after: a run of `first_rows` first, then the measured
    #: one at once; pair: two processes started `gap_s` apart, measured together.
    mode: str = "single"
    first_rows: int = 0
    gap_s: float = 5.0
    #: Seconds from the sandbox's start to the first run: where a fixed
    #: window's boundaries fall in the run.
    phase_s: float = 0.0

    def sandbox_flags(self):
        flags = ["--quota", str(QUOTA), "--window", f"{WINDOW_S}s", "--block", f"{WINDOW_S}s"]
        flags += ["--window-kind", self.window_kind]
        if self.steady:
            flags += ["--background-load", str(self.steady)]
        for requests, offset in self.bursts:
            flags += ["--background-burst", f"{requests}@{offset}s"]
        if self.enforced is not None:
            flags += ["--enforced-quota", str(self.enforced)]
        return flags + self.extra_sandbox

    def measured_rows(self):
        return self.rows * 2 if self.mode == "pair" else self.rows

    def ideal_s(self):
        left = (self.enforced or QUOTA) - self.steady * WINDOW_S
        work = self.measured_rows() + sum(requests for requests, _ in self.bursts)
        return work / left * WINDOW_S

    def certificates(self):
        return self.measured_rows() + self.first_rows


CASES = [
    Case("alone-sliding", "alone, sliding window", 200),
    Case("alone-fixed", "alone, fixed window", 200, window_kind="fixed"),
    Case("alone-token-bucket", "alone, token bucket", 200, window_kind="token-bucket"),
    Case(
        "no-headers-latency",
        "`--rate 100/20s`, no rate-limit headers, latency exponential mean 300 ms capped at 3 s",
        200,
        extra_sandbox=["--ratelimit-dialect", "none", *LATENCY],
        rate=f"{QUOTA}/{WINDOW_S}s",
    ),
    Case("fractional-latency", "fractional `t` (`t=7.314`), plus that latency", 200,
         extra_sandbox=["--fractional-reset", *LATENCY]),
    Case("fractional-consumer-30", "fractional `t` plus another consumer spending 30 % of the quota", 200,
         steady=0.3 * QUOTA / WINDOW_S, extra_sandbox=["--fractional-reset"]),
    Case("lie-100-80", "announces `q=100`, enforces 80", 200, enforced=80),
    Case("consumer-30", "another consumer at a steady 30 %", 200, steady=0.3 * QUOTA / WINDOW_S),
    # Not in the table: a real tool's requests bunch (--background-random).
    Case("consumer-30-random", "another consumer at 30 %, its requests at random (Poisson)", 200,
         steady=0.3 * QUOTA / WINDOW_S, extra_sandbox=["--background-random"]),
    Case("fractional-consumer-30-random", "the same with a fractional `t`", 200,
         steady=0.3 * QUOTA / WINDOW_S, extra_sandbox=["--background-random", "--fractional-reset"]),
    Case("right-after", "a run started right after another (100 rows) with the same token", 200,
         mode="after", first_rows=100),
    Case("two-processes-sliding", "two processes, same token, started 5 s apart, sliding window", 100,
         mode="pair"),
    # Where the boundaries fall matters on a fixed window: started at the
    # window's start no run was blocked in 4; 12 s in (the boundaries 8 s
    # into the first run and 3 s into the second), 2 of 4 seeds were.
    Case("two-processes-fixed", "the same on a fixed window, the first started 12 s into a window", 100,
         window_kind="fixed", mode="pair", phase_s=12),
    # Not in the table: each run learning the lie on its own costs a 429 a run.
    Case("two-processes-lie", "two processes, same token, started 5 s apart, announcing 100 and enforcing 80",
         100, enforced=80, mode="pair"),
    Case("burst-at-99", "another tool bursts 3 requests 25 s in, while cfrevoke holds 99 % of the window",
         200, bursts=[(3, 25)]),
    Case("burst-reserve", "the same with a burst of 2, the standing reserve at this quota",
         200, bursts=[(2, 25)]),
    Case("burst-50-at-5s", "another tool's burst of 50 requests, 5 s into the run", 200, bursts=[(50, 5)]),
    Case("cron-5-every-11s", "another tool sends 5 at once every 11 s (a cron job), fractional `t`", 200,
         bursts=[(5, 11 * k) for k in range(1, 8)], extra_sandbox=["--fractional-reset"]),
]


def release_binary():
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "cfrevoke"], check=True)
    metadata = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                              check=True, capture_output=True, text=True)
    return Path(json.loads(metadata.stdout)["target_directory"]) / "release" / "cfrevoke"


class Sandbox:
    def __init__(self, binary, case, work, seed):
        self.csv = work / "certs.csv"
        command = [str(binary), "sandbox", "--listen", "127.0.0.1:0", "--generate", str(case.certificates()),
                   "--zones", "1", "--write-csv", str(self.csv), "--seed", str(seed), *case.sandbox_flags()]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        lines = {}
        while not {"base_url", "token"} <= lines.keys():
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"{case.name}: the sandbox stopped before it served ({command})")
            key, _, value = line.strip().partition("=")
            lines[key] = value
        self.base_url, self.token = lines["base_url"], lines["token"]

    def stats(self):
        root = self.base_url.removesuffix("/client/v4")
        with urllib.request.urlopen(f"{root}/__sandbox/stats", timeout=10) as answer:
            return json.load(answer)

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def split_rows(csv, parts, work):
    """The sandbox's CSV cut into consecutive files of `parts` rows each."""
    header, *rows = csv.read_text().splitlines()
    files, start = [], 0
    for index, count in enumerate(parts):
        path = work / f"part-{index}.csv"
        path.write_text("\n".join([header, *rows[start:start + count]]) + "\n")
        files.append(path)
        start += count
    return files


def start_revoke(binary, case, sandbox, csv, work):
    env = dict(os.environ, CLOUDFLARE_API_TOKEN=sandbox.token, CLOUDFLARE_BASE_URL=sandbox.base_url,
               # A state directory of the case's own: runs of other cases
               # against sandboxes with the same seed (and so the same token)
               # must not look like this user's history.
               XDG_STATE_HOME=str(work / "state"))
    output = csv.with_suffix(".results.csv")
    command = [str(binary), "revoke", str(csv), "-o", str(output), "--yes", "-q", "--rate", case.rate,
               "--skip-enforcement-check", "--log-file", str(csv.with_suffix(".log.jsonl"))]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL), time.monotonic()


def finish(process, started):
    code = process.wait()
    return code, time.monotonic() - started


def run_case(binary, case, seed):
    with tempfile.TemporaryDirectory(prefix=f"pacing-{case.name}-") as tmp:
        work = Path(tmp)
        sandbox = Sandbox(binary, case, work, seed)
        try:
            notes = []
            time.sleep(case.phase_s)
            if case.mode == "single":
                [csv] = split_rows(sandbox.csv, [case.rows], work)
                code, elapsed = finish(*start_revoke(binary, case, sandbox, csv, work))
                codes = [code]
            elif case.mode == "after":
                first, second = split_rows(sandbox.csv, [case.first_rows, case.rows], work)
                first_code, first_s = finish(*start_revoke(binary, case, sandbox, first, work))
                code, elapsed = finish(*start_revoke(binary, case, sandbox, second, work))
                codes = [first_code, code]
                notes.append(f"first run {first_s:.1f} s")
            else:
                a, b = split_rows(sandbox.csv, [case.rows, case.rows], work)
                run_a = start_revoke(binary, case, sandbox, a, work)
                time.sleep(case.gap_s)
                run_b = start_revoke(binary, case, sandbox, b, work)
                (code_a, a_s), (code_b, b_s) = finish(*run_a), finish(*run_b)
                codes = [code_a, code_b]
                elapsed = max(a_s, run_b[1] - run_a[1] + b_s)
                notes.append(f"first {a_s:.1f} s, second {b_s:.1f} s")
            stats = sandbox.stats()
        finally:
            sandbox.stop()
    return {
        "case": case.name,
        "429s": stats["rate_limited"],
        "busiest": stats["max_in_window"],
        "requests": stats["requests"],
        "elapsed_s": elapsed,
        "ideal_s": case.ideal_s(),
        "exit_codes": codes,
        "notes": notes,
    }


def spread(values, fmt):
    low, high = min(values), max(values)
    return fmt.format(low) if fmt.format(low) == fmt.format(high) else f"{fmt.format(low)}-{fmt.format(high)}"


def cell(case, runs):
    """One case's figures over its repetitions, as a table cell."""
    too_many = ", ".join(str(run["429s"]) for run in runs)
    ratio = spread([run["elapsed_s"] / run["ideal_s"] for run in runs], "{:.2f}")
    busiest = spread([run["busiest"] for run in runs], "{}")
    quota = f"{QUOTA} ({case.enforced} enforced)" if case.enforced else str(QUOTA)
    text = f"{too_many} × 429, {ratio} × ideal, busiest {busiest}/{quota}"
    failed = [code for run in runs for code in run["exit_codes"] if code != 0]
    if failed:
        text += f", exit codes {sorted(set(failed))}"
    notes = "; ".join(note for run in runs for note in run["notes"])
    return f"{text} ({notes})" if notes else text


def table(rows, label):
    lines = [f"| case | what | {label} |", "|---|---|---|"]
    lines += [f"| `{case.name}` | {case.what} | {text} |" for case, text in rows]
    return lines


def merge_column(readme, rows, label):
    """Adds (or replaces) the column `label` of the README's table, by case name."""
    text = readme.read_text()
    head, start, rest = text.partition(TABLE_START)
    old, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        sys.exit(f"{readme} has no {TABLE_START} ... {TABLE_END} table")
    table_lines = [line for line in old.strip().splitlines() if line.startswith("|")]
    if not table_lines:
        body = table(rows, label)
    else:
        split = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table_lines]
        header = split[0]
        column = header.index(label) if label in header else len(header)
        if column == len(header):
            header.append(label)
            split[1].append("---")
        by_name = {f"`{case.name}`": (case.what, text) for case, text in rows}
        known = {row[0] for row in split[2:]}
        for row in split[2:]:
            row.extend([""] * (len(header) - len(row)))
            if row[0] in by_name:
                row[1], row[column] = by_name[row[0]]
        for case, text in rows:
            if f"`{case.name}`" not in known:
                split.append([f"`{case.name}`", case.what] + [""] * (len(header) - 2))
                split[-1][column] = text
        body = ["| " + " | ".join(row) + " |" for row in split]
    readme.write_text(head + start + "\n" + "\n".join(body) + "\n" + end + tail)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", help="run only this case (repeatable)", metavar="NAME")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (default 1)")
    parser.add_argument("--jobs", type=int, default=4,
                        help="cases run at once, each with its own sandbox (default 4; they are mostly idle)")
    parser.add_argument("--binary", type=Path, help="cfrevoke to run instead of building the release binary")
    parser.add_argument("--label", default="measured", help="name of the figures' column")
    parser.add_argument("--readme", type=Path, help="write the column into this file's table instead of printing")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    if args.list:
        for case in CASES:
            print(f"{case.name}: {case.what} (ideal {case.ideal_s():.1f} s)")
        return
    unknown = set(args.case or []) - {case.name for case in CASES}
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}; see --list")
    cases = [case for case in CASES if not args.case or case.name in args.case]
    binary = args.binary or release_binary()
    jobs = [(case, repetition) for repetition in range(args.repeat) for case in cases]
    results = {case.name: [] for case in cases}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        # A seed per repetition: the same one would draw the same latencies,
        # and repetitions started together would run in lockstep.
        futures = {pool.submit(run_case, binary, case, repetition + 1): case for case, repetition in jobs}
        for future in concurrent.futures.as_completed(futures):
            run = future.result()
            results[run["case"]].append(run)
            print(json.dumps(run), file=sys.stderr, flush=True)
    rows = [(case, cell(case, results[case.name])) for case in cases]
    if args.readme:
        merge_column(args.readme, rows, args.label)
    else:
        print("\n".join(table(rows, args.label)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""gate_stats.py - the statistics of scripts/gate's wall-clock half.

    gate_stats.py wall DIR [--alpha A] [--min-effect F] [--suspects] [--markdown FILE]
    gate_stats.py check-baseline BASELINE --cores N --latency-ms L --cpu-ms C --time-scale S
                  [--sizes LIST] [--profile P]
    gate_stats.py sweep-baseline BASELINE RUN.json... [--tolerance F] [--markdown FILE]
    gate_stats.py sensitivity DIR

wall: DIR holds one JSON file per trial, named wall-SIDE-ROUND-TRIAL.json (SIDE base or head),
each a bench_gate_wall object ({"figures": {NAME: {"value", "better", "kind", "unit"}}}) or a
bench_sweep --json object (its rows become sweep_speedup_nN, higher is better, and
sweep_free_over_ideal_nN = free_s / (L + max(1, n/P) c), lower is better). The trials of base
and head were run alternately, so slow spells of a shared machine fall on both sides.

  A wall figure is flagged when head is worse than base by the one-sided Mann-Whitney U test
  (exact distribution, ties counted half) at p < alpha (default 0.01) AND the ratio of the
  medians is worse by more than min-effect (default 0.10): the test says the difference is not
  chance, the floor says it matters. A count figure (kind "count", e.g. connections per
  request) is deterministic and flagged when head's median exceeds base's at all.
  --suspects prints the wall figures of the last round that are flagged or noisy (a side whose
  interquartile range exceeds 25 % of its median) and exits 0: scripts/gate re-runs those in a
  new round. Without it: a figure REGRESSED only when every round that measured it flagged it,
  so a figure flagged once by a noisy spell and cleared on its re-run holds.
check-baseline: exit 4 unless the committed sweep baseline was made with this run's cores,
  latency, CPU per answer, time scale (and sizes, profile when given), before anything is run.
sensitivity: for an A/A run (base and head the same code), the smallest slowdown of each wall
  figure the test flags, found by making head's measured trials that much worse.
sweep-baseline: the fallback without --base: each size's speedup (median over the RUN files)
  against the baseline's, flagged below (1 - tolerance) x baseline (default 0.10).

Exit: 0 holds, 3 a regression, 1 could not measure (a figure or file missing, unreadable),
2 usage, 4 the baseline does not match this run (check-baseline).
"""
import glob
import json
import math
import os
import re
import sys


def median(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def quartiles(v):
    s = sorted(v)
    n = len(s)
    if n < 4:
        return s[0], s[-1]
    return s[n // 4], s[(3 * n) // 4]


def mw_p_greater(a, b):
    """One-sided p-value that b tends to be larger than a (Mann-Whitney U, exact null
    distribution without tie correction; a tie counts half)."""
    n, m = len(a), len(b)
    u = sum((1.0 if y > x else 0.5 if y == x else 0.0) for x in a for y in b)
    # counts[k][i][j]: arrangements of i a's and j b's with U = k; built by the recurrence
    # f(i, j, k) = f(i - 1, j, k) + f(i, j - 1, k - i) (the last element is an a or a b).
    maxu = n * m
    f = [[None] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            row = [0] * (maxu + 1)
            if i == 0 or j == 0:
                row[0] = 1
            else:
                prev_a, prev_b = f[i - 1][j], f[i][j - 1]
                for k in range(maxu + 1):
                    row[k] = prev_a[k] + (prev_b[k - i] if k >= i else 0)
            f[i][j] = row
    dist = f[n][m]
    total = sum(dist)
    need = math.ceil(u - 1e-9)  # P(U >= u)
    return sum(dist[k] for k in range(max(0, need), maxu + 1)) / total


def sweep_figures(j):
    out = {}
    cores = j.get("cores", 1) or 1
    lat, cpu = j.get("latency_s"), j.get("cpu_s")
    for r in j.get("rows", []):
        n = r.get("n")
        sp = r.get("speedup_free_vs_gil", 0)
        if n is None:
            continue
        if sp and sp > 0:
            out[f"sweep_speedup_n{n}"] = {"value": sp, "better": "higher", "kind": "wall",
                                          "unit": "x"}
        free = r.get("free_s", 0)
        if free and free > 0 and lat is not None and cpu is not None:
            p = max(1, min(cores, n))
            ideal = lat + max(1.0, n / p) * cpu
            out[f"sweep_free_over_ideal_n{n}"] = {"value": free / ideal, "better": "lower",
                                                  "kind": "wall", "unit": "x"}
    return out


def load_figures(path):
    j = json.load(open(path))
    if "figures" in j:
        return j["figures"]
    if "rows" in j:
        return sweep_figures(j)
    raise ValueError(f"{path}: neither a bench_gate_wall nor a bench_sweep result")


NAME = re.compile(r"wall-(base|head)-(\d+)-(s?\d+)\.json$")


def collect(d):
    """{round: {side: {figure: [values]}}} and the figures' metadata."""
    rounds, meta = {}, {}
    for p in sorted(glob.glob(os.path.join(d, "wall-*.json"))):
        m = NAME.search(os.path.basename(p))
        if not m:
            continue
        side, rnd = m.group(1), int(m.group(2))
        for name, f in load_figures(p).items():
            rounds.setdefault(rnd, {"base": {}, "head": {}})[side].setdefault(name, []).append(
                float(f["value"]))
            meta.setdefault(name, f)
    return rounds, meta


def judge(b, h, f, alpha, min_effect):
    """(verdict, change, p, noisy) for one figure's base and head trials in one round."""
    mb, mh = median(b), median(h)
    lower = f.get("better", "lower") == "lower"
    if mb == 0 and mh == 0:
        change = 0.0
    elif mb == 0 or mh == 0:
        change = math.inf if (mh > mb) == lower else -math.inf
    else:
        change = (mh / mb - 1) if lower else (mb / mh - 1)  # > 0: head is worse
    if f.get("kind") == "count":
        worse = mh > mb if lower else mh < mb
        better = mh < mb if lower else mh > mb
        return ("flagged" if worse else "better" if better else "holds"), change, None, False
    worse_p = mw_p_greater(b, h) if lower else mw_p_greater(h, b)
    better_p = mw_p_greater(h, b) if lower else mw_p_greater(b, h)
    noisy = False
    for v in (b, h):
        q1, q3 = quartiles(v)
        med = median(v)
        if med and (q3 - q1) / abs(med) > 0.25:
            noisy = True
    if worse_p < alpha and change > min_effect:
        return "flagged", change, worse_p, noisy
    if better_p < alpha and change < -min_effect:
        return "better", change, better_p, noisy
    return "holds", change, worse_p, noisy


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    return f"{v:.3g}" if a < 1000 else f"{v:.0f}"


def cmd_wall(args):
    d = args.pop(0) if args else None
    alpha, min_effect, suspects, md = 0.01, 0.10, False, None
    while args:
        a = args.pop(0)
        if a == "--suspects":
            suspects = True
        elif a in ("--alpha", "--min-effect", "--markdown") and args:
            v = args.pop(0)
            if a == "--markdown":
                md = v
            else:
                try:
                    x = float(v)
                except ValueError:
                    return usage(f"{a} wants a number, got '{v}'")
                if a == "--alpha":
                    alpha = x
                else:
                    min_effect = x
        else:
            return usage(f"unknown argument '{a}'")
    if d is None or not os.path.isdir(d):
        return usage("wall needs the directory of trial files")
    try:
        rounds, meta = collect(d)
    except (OSError, ValueError, KeyError) as e:
        print(f"gate_stats: cannot read the trials: {e}", file=sys.stderr)
        return 1
    if not rounds:
        print(f"gate_stats: no wall-*.json trials in {d}", file=sys.stderr)
        return 1
    if suspects:
        last = max(rounds)
        r = rounds[last]
        for name in sorted(r["head"]):
            f = meta[name]
            if name not in r["base"] or f.get("kind") == "count":
                continue
            v, _, _, noisy = judge(r["base"][name], r["head"][name], f, alpha, min_effect)
            if v == "flagged" or noisy:
                print(name)
        return 0
    status, rows = 0, []
    for name in sorted(meta):
        f = meta[name]
        seen = [k for k in sorted(rounds) if name in rounds[k]["base"] or name in rounds[k]["head"]]
        verdicts, last = [], None
        missing = None
        for k in seen:
            b, h = rounds[k]["base"].get(name), rounds[k]["head"].get(name)
            if not h:
                missing = "not measured on head"
                continue
            if not b:
                missing = missing or "new (no base figure)"
                continue
            last = (k, b, h) + judge(b, h, f, alpha, min_effect)
            verdicts.append(last[3])
        if last is None:
            verdict = missing or "not measured"
            if verdict == "not measured on head":
                status = max(status, 1) if status != 3 else 3
            rows.append((name, f.get("better", ""), "-", "-", "-", "-", "-", verdict))
            continue
        k, b, h, v, change, p, noisy = last
        if all(x == "flagged" for x in verdicts):
            verdict = "REGRESSED"
            status = 3
        elif all(x == "better" for x in verdicts):
            verdict = "improved"
        elif "flagged" in verdicts:
            verdict = "holds (flagged once, cleared on re-run)"
        else:
            verdict = "holds"
        test = ("exact" if f.get("kind") == "count" else f"MW p={p:.3f}") + \
            (f", {len(verdicts)} rounds" if len(verdicts) > 1 else "")
        rows.append((f"{name} ({f.get('unit', '')})", f.get("better", ""),
                     f"{fmt(median(b))} (n={len(b)})", f"{fmt(median(h))} (n={len(h)})",
                     "-" if math.isinf(change) else f"{change * 100:+.1f}%",
                     test, "yes" if noisy else "", verdict))
    header = ("figure", "better", "base median", "head median", "worse by", "test", "noisy",
              "verdict")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    if md:
        with open(md, "w") as fh:
            fh.write(f"Wall-clock figures: one-sided Mann-Whitney U over interleaved trials, "
                     f"flagged at p < {alpha} and worse by more than {min_effect * 100:.0f} %; "
                     f"counts exactly; a flagged or noisy figure is re-run and regresses only "
                     f"if flagged in every round.\n\n")
            fh.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
            for r in rows:
                fh.write("| " + " | ".join(str(c) for c in r) + " |\n")
    return status


def parse_opts(args, names):
    out = {}
    while args:
        a = args.pop(0)
        key = a[2:].replace("-", "_") if a.startswith("--") else None
        if key not in names or not args:
            raise ValueError(f"unknown argument or missing value: '{a}'")
        out[key] = args.pop(0)
    return out


def cmd_check_baseline(args):
    if not args:
        return usage("check-baseline needs the baseline file")
    path = args.pop(0)
    try:
        o = parse_opts(args, {"cores", "latency_ms", "cpu_ms", "time_scale", "sizes", "profile"})
        want = {"cores": int(o["cores"]),
                "latency_s": float(o["latency_ms"]) * float(o["time_scale"]) / 1000,
                "cpu_s": float(o["cpu_ms"]) * float(o["time_scale"]) / 1000,
                "time_scale": float(o["time_scale"])}
    except (ValueError, KeyError) as e:
        return usage(f"check-baseline: {e}")
    if not os.path.exists(path):
        print(f"gate: the baseline {path} does not exist (scripts/gate --update writes it)",
              file=sys.stderr)
        return 4
    try:
        j = json.load(open(path))
    except (OSError, ValueError) as e:
        print(f"gate: the baseline {path} cannot be read: {e}", file=sys.stderr)
        return 4
    bad = []
    for k, v in want.items():
        have = j.get(k)
        if not isinstance(have, (int, float)) or abs(have - v) > 1e-9 * max(1, abs(v)):
            bad.append(f"{k} {have} in the baseline, {v:g} in this run")
    if "profile" in o or "profile" in j:
        if j.get("profile") != o.get("profile"):
            bad.append(f"profile {j.get('profile')!r} in the baseline, {o.get('profile')!r} here")
    if "sizes" in o:
        have = {r.get("n") for r in j.get("rows", [])}
        miss = [s for s in o["sizes"].split(",") if s and int(s) not in have]
        if miss:
            bad.append(f"sizes {','.join(miss)} are not in the baseline")
    if bad:
        print(f"gate: the baseline {path} does not match this run, refused before measuring: "
              + "; ".join(bad) + " (measure against --base REF, or rewrite it with --update on "
              "this machine)", file=sys.stderr)
        return 4
    return 0


def cmd_sweep_baseline(args):
    tol, md, files = 0.10, None, []
    while args:
        a = args.pop(0)
        if a in ("--tolerance", "--markdown") and args:
            v = args.pop(0)
            if a == "--markdown":
                md = v
            else:
                try:
                    tol = float(v)
                except ValueError:
                    return usage(f"--tolerance wants a number, got '{v}'")
        else:
            files.append(a)
    if len(files) < 2:
        return usage("sweep-baseline needs the baseline and at least one run")
    try:
        base = sweep_figures(json.load(open(files[0])))
        runs = [sweep_figures(json.load(open(f))) for f in files[1:]]
    except (OSError, ValueError) as e:
        print(f"gate_stats: cannot read the sweep results: {e}", file=sys.stderr)
        return 1
    status, rows = 0, []
    for name in sorted(k for k in base if k.startswith("sweep_speedup_")):
        vals = [r[name]["value"] for r in runs if name in r]
        if not vals:
            rows.append((name, f"{base[name]['value']:.2f}", "-", "-", "not measured"))
            status = max(status, 1) if status != 3 else 3
            continue
        h, b = median(vals), base[name]["value"]
        change = b / h - 1
        verdict = "REGRESSED" if h < b * (1 - tol) else "holds"
        if verdict == "REGRESSED":
            status = 3
        rows.append((name, f"{b:.2f}", f"{h:.2f} (n={len(vals)})", f"{change * 100:+.1f}%",
                     verdict))
    header = ("figure", "baseline", "head median", "worse by", "verdict")
    for r in [header] + rows:
        print("  ".join(str(c).ljust(26 if i == 0 else 14) for i, c in enumerate(r)))
    if md:
        with open(md, "w") as fh:
            fh.write(f"Sweep speedups against the committed baseline (no --base): flagged below "
                     f"{(1 - tol) * 100:.0f} % of it; a flagged size was re-run first.\n\n")
            fh.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
            for r in rows:
                fh.write("| " + " | ".join(str(c) for c in r) + " |\n")
    return status


def cmd_sensitivity(args):
    """From an A/A run (the same code on both sides): the smallest slowdown of each wall figure
    the test would flag, found by making head's measured trials worse by x and judging again.
    The noise is the machine's, measured; only the slowdown is synthetic."""
    if not args or not os.path.isdir(args[0]):
        return usage("sensitivity needs the directory of an A/A run's trials")
    rounds, meta = collect(args[0])
    steps = [0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.50, 1.0, 2.0, 5.0]
    r = rounds[min(rounds)]
    for name in sorted(r["head"]):
        f = meta[name]
        if name not in r["base"] or f.get("kind") == "count":
            continue
        found = None
        for x in steps:
            lower = f.get("better", "lower") == "lower"
            h = [v * (1 + x) if lower else v / (1 + x) for v in r["head"][name]]
            if judge(r["base"][name], h, f, 0.01, 0.10)[0] == "flagged":
                found = x
                break
        print(f"{name:28s} {'>' + str(int(steps[-1] * 100)) + ' %' if found is None else f'{found * 100:.0f} %'}")
    return 0


def usage(msg):
    print(f"gate_stats: {msg}", file=sys.stderr)
    print("\n".join(__doc__.strip().splitlines()[2:6]), file=sys.stderr)
    return 2


def main(argv):
    if len(argv) < 2:
        return usage("which command?")
    cmd, args = argv[1], argv[2:]
    if cmd in ("-h", "--help"):
        print(__doc__)
        return 0
    if cmd == "wall":
        return cmd_wall(args)
    if cmd == "check-baseline":
        return cmd_check_baseline(args)
    if cmd == "sweep-baseline":
        return cmd_sweep_baseline(args)
    if cmd == "sensitivity":
        return cmd_sensitivity(args)
    return usage(f"unknown command '{cmd}'")


if __name__ == "__main__":
    sys.exit(main(sys.argv))

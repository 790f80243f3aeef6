#!/usr/bin/env python3
"""icount_compare.py - judge head's instruction counts against base's (scripts/gate).

    icount_compare.py BASE.json HEAD.json [--tolerance F] [--markdown FILE]

Both files are scripts/icount --json output. A workload regresses when head's median Ir per
step exceeds base's by more than its tolerance: max(F, 2 x the larger run-to-run spread the two
sides showed), F = 0.02 by default. Counts are deterministic for single-threaded workloads
(spread 0), so there the tolerance is F; threaded ones widen it by what they showed.
Exit: 0 every workload holds, 3 at least one regressed, 1 a workload is missing on a side or a
file cannot be read (could not measure is never reported as regressed), 2 usage.
"""
import json
import sys


def main(argv):
    args = argv[1:]
    tol, md = 0.02, None
    files = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--tolerance", "--markdown"):
            if i + 1 >= len(args):
                print(f"icount_compare: {a} needs a value", file=sys.stderr)
                return 2
            if a == "--tolerance":
                try:
                    tol = float(args[i + 1])
                except ValueError:
                    print(f"icount_compare: --tolerance wants a number, got '{args[i + 1]}'",
                          file=sys.stderr)
                    return 2
            else:
                md = args[i + 1]
            i += 2
            continue
        files.append(a)
        i += 1
    if len(files) != 2 or not (0 < tol < 1):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        base, head = (json.load(open(f))["workloads"] for f in files)
    except (OSError, ValueError, KeyError) as e:
        print(f"icount_compare: cannot read the counts: {e}", file=sys.stderr)
        return 1
    status = 0
    rows = []
    for name in sorted(set(base) | set(head)):
        if name not in base or name not in head:
            side = "base" if name not in base else "head"
            rows.append((name, "-", "-", "-", "-", f"not measured on {side}"))
            status = max(status, 1) if status != 3 else 3
            continue
        b, h = base[name], head[name]
        allow = max(tol, 2 * max(b.get("spread", 0), h.get("spread", 0)))
        change = h["ir"] / b["ir"] - 1 if b["ir"] > 0 else float("inf")
        if change > allow:
            verdict = "REGRESSED"
            status = 3
        elif change < -allow:
            verdict = "improved"
        else:
            verdict = "holds"
        rows.append((name, f"{b['ir']:.0f}", f"{h['ir']:.0f}", f"{change * 100:+.2f}%",
                     f"{allow * 100:.1f}%", verdict))
    header = ("workload", "base Ir/step", "head Ir/step", "change", "tolerance", "verdict")
    widths = [max(len(str(r[k])) for r in rows + [header]) for k in range(6)]
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    if md:
        with open(md, "w") as f:
            f.write("| " + " | ".join(header) + " |\n|" + "---|" * 6 + "\n")
            for r in rows:
                f.write("| " + " | ".join(str(c) for c in r) + " |\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))

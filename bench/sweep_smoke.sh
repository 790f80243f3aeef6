#!/usr/bin/env bash
# bench/sweep_smoke.sh BENCH_SWEEP BASELINE_JSON - a CTest smoke run of the sweep at a tiny time scale: every
# column, the big row and the timeline run, the results folder holds every file, the JSON keeps
# schema 1's fields (scripts/gate reads them) and has schema 2's, the CSV has a line per cell,
# the report its tables, and a bad option exits 2 naming it. No figure is judged here.
set -euo pipefail
bin=$1 base=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/cx-sweep-smoke.XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$bin" --sizes 1,2 --trials 2 --time-scale 0.002 --big 4 --quiet --commit smoke \
  --out "$dir/out" --json "$dir/plain.json" --base "$base" \
  >"$dir/stdout" 2>"$dir/stderr" || { cat "$dir/stderr"; echo "bench_sweep failed"; exit 1; }
for f in report.md sweep.json sweep.csv speedup.dat speedup.gp; do
  [ -s "$dir/out/$f" ] || { echo "missing $f"; exit 1; }
done
if command -v gnuplot >/dev/null; then
  [ -s "$dir/out/speedup.png" ] || { echo "gnuplot is installed but no speedup.png"; exit 1; }
fi
grep -q "SPEEDUP:" "$dir/stdout" || { echo "no SPEEDUP line"; exit 1; }
grep -q "Average: .*s ± .*s" "$dir/stdout" || { echo "no seed-format Average line"; exit 1; }
grep -q "| n | head | model |" "$dir/out/report.md" || { echo "report lacks the speedup table"; exit 1; }
# base vs head: the baseline's n = 1 row is read (a number, not "-", in the base column)
grep -Eq '^\| 1 \| [0-9.]+x \| [0-9.]+x \| [-+0-9.]+% \| [0-9.]+x \| [0-9.]+x \|' "$dir/out/report.md" ||
  { echo "report lacks the base column"; cat "$dir/stderr"; exit 1; }
python3 - "$dir/out/sweep.json" "$dir/plain.json" "$dir/out/sweep.csv" <<'PY'
import csv, json, sys
for path in sys.argv[1:3]:
    d = json.load(open(path))
    for k in ("cores", "latency_s", "cpu_s", "time_scale", "trials", "rows", "schema", "commit",
              "command_line", "machine", "server", "profile", "timeline"):
        assert k in d, (path, k)
    assert d["commit"] == "smoke" and d["schema"] == 2
    assert d["machine"]["cpu_model"] and len(d["machine"]["load_before"]) == 3
    ns = [r["n"] for r in d["rows"]]
    assert ns == [1, 2, 4], ns
    for r in d["rows"][:2]:
        for k in ("serial_s", "gil_s", "free_s", "speedup_free_vs_gil", "model_speedup"):
            assert r[k] > 0, (k, r[k])
        assert set(r["cells"]) == {"serial", "gil", "free", "asyncio", "hybrid", "auto"}
        for c in r["cells"].values():
            assert len(c["samples_s"]) == 2 and c["model_s"] > 0 and c["inflight_max"] >= 1
    assert set(d["rows"][2]["cells"]) == {"hybrid"}
    assert [t["mode"] for t in d["timeline"]] == ["gil", "free"]
    assert len(d["profile"]["phases"]) == 4
rows = list(csv.DictReader(open(sys.argv[3])))
assert len(rows) == 13, len(rows)
PY
if "$bin" --sizes 0 >/dev/null 2>"$dir/err"; then echo "--sizes 0 accepted"; exit 1; fi
grep -q -- "--sizes '0'" "$dir/err" || { echo "the error does not name --sizes"; exit 1; }
echo "sweep smoke: ok"

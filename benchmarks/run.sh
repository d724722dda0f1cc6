#!/usr/bin/env bash
# devserve vs uvicorn (and optionally the other peers), suites hello and json, 1 worker, pinned.
#
# Usage: benchmarks/run.sh [--peers] [--rounds N] [--duration S] [--suites "hello json"]
#                          [--out PREFIX] [--restart | --reload | --metrics | --h2]
#                          [-- extra bench.py / restart_bench.py / reload_bench.py arguments]
#   --peers           also granian, hypercorn and gunicorn+uvicorn (or BENCH_PEERS=1)
#   --rounds N        interleaved rounds (default 5, from suites.json)
#   --duration S      seconds of measured wrk load per trial (default 10)
#   --suites "..."    suites to run (default "hello json"; "stream" works too)
#   --out PREFIX      output prefix (default benchmarks/results/<suites>-<timestamp>)
#   --restart         instead: worker spawn -> ready and rolling restart (SIGHUP) of 2 workers under
#                     load, devserve vs gunicorn+uvicorn and uvicorn --workers 2 (restart_bench.py;
#                     --rounds and --out apply; no wrk needed)
#   --reload          instead: save -> first response with the new code, and failed requests during
#                     the reload under load, devserve (1 and 2 workers) vs uvicorn/granian/hypercorn
#                     --reload and gunicorn+uvicorn SIGHUP (reload_bench.py; --rounds and --out apply)
#   --metrics         instead: the cost of live metrics, devserve --no-metrics vs metrics on vs metrics
#                     on + a control-API subscriber (suite "metrics"; --rounds, --duration, --out apply;
#                     default 20 rounds x 5 s; add `-- --devserve-rev HEAD` to pin the code)
#   --h2              instead: HTTP/2 with h2load, devserve (h2c prior knowledge) vs hypercorn and granian,
#                     plus devserve's own HTTP/1.1 under h2load --h1; suites h2-hello-10x10 h2-hello-1x100
#                     h2-json-10x10 h2-json-1x100 (--suites picks others); ratios to hypercorn;
#                     --rounds, --duration, --out apply (default 5 rounds x 5 s; installs nghttp2-client)
# Environment:
#   PEERS_VENV           peers venv (default /tmp/peers-venv; created with setup_peers.sh if missing)
#   BENCH_DEVSERVE_CMD   override devserve's command template (placeholders as in suites.json;
#                        with --restart it should take {workers} and {control}, see restart_bench.py;
#                        with --reload it should take {workers} and {app_dir}, see reload_bench.py)
#
# Writes PREFIX.md and PREFIX.json, then prints req/s and p99 as ratios to uvicorn (ratios.py).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
VENV=${PEERS_VENV:-/tmp/peers-venv}
PEERS=${BENCH_PEERS:-0}
RESTART=0
RELOAD=0
METRICS=0
H2=0
SUITES=""
ROUNDS=""
DURATION=""
OUT=""
EXTRA=()

while [ $# -gt 0 ]; do
  case $1 in
    --peers) PEERS=1 ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --suites) SUITES=$2; shift ;;
    --out) OUT=$2; shift ;;
    --restart) RESTART=1 ;;
    --reload) RELOAD=1 ;;
    --metrics) METRICS=1 ;;
    --h2) H2=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# (a) the peers venv and wrk
if ! "$VENV/bin/python" -c 'import uvicorn, granian, gunicorn, hypercorn' 2>/dev/null; then
  echo "run.sh: creating the peers venv in $VENV" >&2
  bash "$HERE/setup_peers.sh" "$VENV"
fi
if [ -z "${BENCH_DEVSERVE_CMD:-}" ] && [ ! -x "$REPO/.venv/bin/devserve" ]; then
  echo "run.sh: $REPO/.venv/bin/devserve not found: install the project into .venv first" >&2
  echo "        (python3.11 -m venv .venv && .venv/bin/pip install -e .), or set BENCH_DEVSERVE_CMD" >&2
  exit 1
fi
if [ "$RESTART" = 1 ]; then
  # worker spawn -> ready and rolling restarts; the servers in turn each round (restart_bench.py)
  ARGS=()
  [ -n "$ROUNDS" ] && ARGS+=(--rounds "$ROUNDS")
  [ -n "${BENCH_DEVSERVE_CMD:-}" ] && ARGS+=(--server "devserve=$BENCH_DEVSERVE_CMD")
  [ -z "$OUT" ] && OUT="$HERE/results/restart-$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$(dirname "$OUT")"
  exec "$VENV/bin/python" "$HERE/restart_bench.py" ${ARGS[@]+"${ARGS[@]}"} --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"}
fi
if [ "$RELOAD" = 1 ]; then
  # reload after a save: latency and failed requests; the servers in turn each round (reload_bench.py)
  ARGS=()
  [ -n "$ROUNDS" ] && ARGS+=(--rounds "$ROUNDS")
  if [ -n "${BENCH_DEVSERVE_CMD:-}" ]; then
    ARGS+=(--server "devserve-1w=watch:1:$BENCH_DEVSERVE_CMD" --server "devserve-2w=watch:2:$BENCH_DEVSERVE_CMD")
  fi
  [ -z "$OUT" ] && OUT="$HERE/results/reload-$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$(dirname "$OUT")"
  exec "$VENV/bin/python" "$HERE/reload_bench.py" ${ARGS[@]+"${ARGS[@]}"} --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"}
fi
command -v taskset >/dev/null || { echo "run.sh: taskset (util-linux) is required" >&2; exit 1; }
if [ "$H2" = 1 ]; then
  # HTTP/2: h2load against devserve, hypercorn, granian and devserve's HTTP/1.1 (--h1), interleaved
  if ! command -v h2load >/dev/null; then
    apt-get install -y nghttp2-client || { apt-get update && apt-get install -y nghttp2-client; }
  fi
  command -v curl >/dev/null || { echo "run.sh: curl is required (the h2c readiness probe)" >&2; exit 1; }
  SUITES=${SUITES:-"h2-hello-10x10 h2-hello-1x100 h2-json-10x10 h2-json-1x100"}
  ARGS=()
  for s in $SUITES; do ARGS+=(--suite "$s"); done
  [ -n "$ROUNDS" ] && ARGS+=(--rounds "$ROUNDS")
  [ -n "$DURATION" ] && ARGS+=(--duration "$DURATION")
  if [ -n "${BENCH_DEVSERVE_CMD:-}" ]; then
    ARGS+=(--server "devserve=$BENCH_DEVSERVE_CMD" --server "devserve-h1=$BENCH_DEVSERVE_CMD")
  fi
  [ -z "$OUT" ] && OUT="$HERE/results/h2-$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$(dirname "$OUT")"
  "$VENV/bin/python" "$HERE/bench.py" ${ARGS[@]+"${ARGS[@]}"} --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"}
  echo
  "$VENV/bin/python" "$HERE/ratios.py" "$OUT.json" | tee "$OUT.ratios.md"
  exit 0
fi
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
fi

if [ "$METRICS" = 1 ]; then
  # devserve-no-metrics, devserve, devserve+subscriber interleaved; ratios to devserve-no-metrics
  [ -z "$OUT" ] && OUT="$HERE/results/metrics-$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$(dirname "$OUT")"
  "$VENV/bin/python" "$HERE/bench.py" --suite metrics --rounds "${ROUNDS:-20}" --duration "${DURATION:-5}" \
    --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"}
  echo
  "$VENV/bin/python" "$HERE/ratios.py" "$OUT.json" | tee "$OUT.ratios.md"
  exit 0
fi

# (b) the run: servers interleaved uvicorn, devserve[, granian, hypercorn, gunicorn+uvicorn]
SUITES=${SUITES:-"hello json"}
ONLY=uvicorn,devserve
[ "$PEERS" = 1 ] && ONLY=uvicorn,devserve,granian,hypercorn,gunicorn+uvicorn
ARGS=(--only "$ONLY")
for s in $SUITES; do ARGS+=(--suite "$s"); done
[ -n "$ROUNDS" ] && ARGS+=(--rounds "$ROUNDS")
[ -n "$DURATION" ] && ARGS+=(--duration "$DURATION")
[ -n "${BENCH_DEVSERVE_CMD:-}" ] && ARGS+=(--server "devserve=$BENCH_DEVSERVE_CMD")
if [ -z "$OUT" ]; then
  tag=$(echo "$SUITES" | tr ' ' '-')
  [ "$PEERS" = 1 ] && tag="$tag-peers"
  OUT="$HERE/results/$tag-$(date +%Y%m%d-%H%M%S)"
fi
mkdir -p "$(dirname "$OUT")"
"$VENV/bin/python" "$HERE/bench.py" "${ARGS[@]}" --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"}

# (c) ratios to uvicorn
echo
"$VENV/bin/python" "$HERE/ratios.py" "$OUT.json" | tee "$OUT.ratios.md"

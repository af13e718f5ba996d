#!/usr/bin/env bash
# Installs what is missing, builds, and starts a Depot node with sample data.
# Usage: deploy/quickstart.sh            (env: DEPOT_PORT=7070, DEPOT_DEMO_DIR=./demo)
#        deploy/quickstart.sh --stop     stops the demo
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=${DEPOT_DEMO_DIR:-$ROOT/demo}
PORT=${DEPOT_PORT:-7070}
mkdir -p "$DEMO"

stop_demo() {
  if [ -f "$DEMO/node.pid" ] && kill -0 "$(cat "$DEMO/node.pid")" 2>/dev/null; then
    kill "$(cat "$DEMO/node.pid")" && echo "stopped depot-node (pid $(cat "$DEMO/node.pid"))"
    while kill -0 "$(cat "$DEMO/node.pid")" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$DEMO/node.pid"
}
if [ "${1:-}" = "--stop" ]; then stop_demo; exit 0; fi

deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target depot-node depotctl
BIN=$ROOT/build/node

stop_demo
# Use the requested port if it is free, else let the node pick one.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then PORT=0; fi
rm -f "$DEMO/node.port"
nohup "$BIN/depot-node" --db "$DEMO/store-1.db" --node-id store-1 --port "$PORT" \
  --port-file "$DEMO/node.port" >"$DEMO/node.log" 2>&1 &
echo $! >"$DEMO/node.pid"
for _ in $(seq 100); do [ -s "$DEMO/node.port" ] && break; sleep 0.1; done
if [ ! -s "$DEMO/node.port" ]; then echo "depot-node did not start:"; cat "$DEMO/node.log"; exit 1; fi
URL="http://127.0.0.1:$(cat "$DEMO/node.port")"
export DEPOT_NODE=$URL DEPOT_OPERATOR=demo

ctl() { "$BIN/depotctl" "$@" >/dev/null; }
ctl import skus deploy/sample/skus.csv
ctl import bins deploy/sample/bins.csv
# Sample stock, once (request ids make these idempotent across runs).
ctl receive --sku TSHIRT-BLK-M --bin A-01-01 --qty 40 --request-id demo-1
ctl receive --sku TSHIRT-BLK-L --bin A-01-02 --qty 25 --request-id demo-2
ctl receive --sku MUG-LOGO --bin B-01-01 --qty 120 --request-id demo-3
ctl receive --sku YOGHURT-500 --bin COLD-01 --qty 30 --lot L2611 --expiry 2026-12-20 --request-id demo-4
ctl receive --sku YOGHURT-500 --bin COLD-01 --qty 30 --lot L2612 --expiry 2027-01-15 --request-id demo-5
ctl receive --sku PHONE-X1 --bin SAFE-01 --qty 3 --serial SN-0001 --serial SN-0002 --serial SN-0003 --request-id demo-6
ctl reserve --sku TSHIRT-BLK-M --ref web-1001 --qty 3 --request-id demo-7

cat <<MSG

Depot demo is running.
  node store-1:  $URL   (logs: $DEMO/node.log, data: $DEMO/store-1.db)
  health:        $URL/healthz      metrics: $URL/metrics

Try:
  export DEPOT_NODE=$URL DEPOT_OPERATOR=\$USER
  build/node/depotctl atp TSHIRT-BLK-M MUG-LOGO
  build/node/depotctl stock --sku YOGHURT-500
  build/node/depotctl reserve --sku MUG-LOGO --ref order-1 --qty 2
  build/node/depotctl consume --sku MUG-LOGO --ref order-1 --qty 2
  build/node/depotctl history --sku MUG-LOGO
  build/node/depotctl verify
  curl -s $URL/v1/stock?sku=TSHIRT-BLK-M

Stop it with: deploy/quickstart.sh --stop
MSG

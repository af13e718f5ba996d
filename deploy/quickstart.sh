#!/usr/bin/env bash
# Installs what is missing, builds, and starts the demo network: depot-central and two nodes
# (warehouse wh-east, store store-soho) with sample data, each on embedded SQLite.
# Usage: deploy/quickstart.sh          (env: DEPOT_DEMO_DIR=./demo)
#        deploy/quickstart.sh --stop   stops the demo
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=${DEPOT_DEMO_DIR:-$ROOT/demo}
mkdir -p "$DEMO"

stop_demo() {
  for p in "$DEMO"/*.pid; do
    [ -f "$p" ] || continue
    pid=$(cat "$p")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      echo "stopped $(basename "$p" .pid) (pid $pid)"
    fi
    rm -f "$p"
  done
}
if [ "${1:-}" = "--stop" ]; then stop_demo; exit 0; fi

deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target depot-node depotctl depot-central
BIN=$ROOT/build
stop_demo

wait_file() {  # file, what
  for _ in $(seq 150); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "$2 did not start:"; cat "${1%.port}.log"; exit 1
}

# Central: gRPC for nodes, HTTP for browsers and depotctl. Free ports are picked automatically.
rm -f "$DEMO/central.port"
nohup "$BIN/central/depot-central" --db "$DEMO/central.db" --grpc-port 0 --http-port 0 \
  --port-file "$DEMO/central.port" >"$DEMO/central.log" 2>&1 &
echo $! >"$DEMO/central.pid"
wait_file "$DEMO/central.port" depot-central
GRPC=$(sed -n 's/^grpc=//p' "$DEMO/central.port")
CHTTP=$(sed -n 's/^http=//p' "$DEMO/central.port")
export DEPOT_CENTRAL=http://127.0.0.1:$CHTTP DEPOT_OPERATOR=demo
CTL=$BIN/node/depotctl
$CTL central import sites deploy/sample/sites.csv >/dev/null
$CTL central import skus deploy/sample/skus.csv >/dev/null
$CTL central import bins deploy/sample/bins.csv >/dev/null
$CTL central import channels deploy/sample/channels.csv >/dev/null
$CTL central import kits deploy/sample/kits.csv >/dev/null

for node in wh-east store-soho; do
  rm -f "$DEMO/$node.port"
  nohup "$BIN/node/depot-node" --db "$DEMO/$node.db" --node-id "$node" --port 0 \
    --port-file "$DEMO/$node.port" --central "127.0.0.1:$GRPC" >"$DEMO/$node.log" 2>&1 &
  echo $! >"$DEMO/$node.pid"
  wait_file "$DEMO/$node.port" "depot-node $node"
done
WH=http://127.0.0.1:$(cat "$DEMO/wh-east.port")
ST=http://127.0.0.1:$(cat "$DEMO/store-soho.port")

# Wait until both nodes have central's master data, then add sample stock (idempotent).
for url in "$WH" "$ST"; do
  for _ in $(seq 100); do
    DEPOT_NODE=$url $CTL skus 2>/dev/null | grep -q MUG-LOGO && break
    sleep 0.1
  done
done
wh() { DEPOT_NODE=$WH $CTL "$@" >/dev/null; }
st() { DEPOT_NODE=$ST $CTL "$@" >/dev/null; }
wh receive --sku TSHIRT-BLK-M --bin A-01-01 --qty 40 --request-id demo-1
wh receive --sku TSHIRT-BLK-L --bin A-01-02 --qty 25 --request-id demo-2
wh receive --sku MUG-LOGO --bin B-01-01 --qty 120 --request-id demo-3
# Lots expire some weeks after the demo's first run (an expired lot cannot be received); the
# dates are kept with the demo data so that a rerun replays the same receipts.
[ -f "$DEMO/lot-dates" ] || { date -u -d '+3 weeks' +%F; date -u -d '+7 weeks' +%F; } >"$DEMO/lot-dates"
SOON=$(sed -n 1p "$DEMO/lot-dates")
LATER=$(sed -n 2p "$DEMO/lot-dates")
wh receive --sku YOGHURT-500 --bin COLD-01 --qty 30 --lot L2611 --expiry "$SOON" --request-id demo-4
wh receive --sku PHONE-X1 --bin SAFE-01 --qty 3 --serial SN-0001 --serial SN-0002 --serial SN-0003 --request-id demo-5
st receive --sku TSHIRT-BLK-M --bin FLOOR --qty 8 --request-id demo-7
st receive --sku MUG-LOGO --bin BACK --qty 12 --request-id demo-8
st receive --sku YOGHURT-500 --bin CHILLER --qty 10 --lot L2612 --expiry "$LATER" --request-id demo-9
# A web order (the same external id again is the same order): routed and released to wh-east.
for _ in $(seq 50); do
  $CTL central rights --site wh-east --sku MUG-LOGO 2>/dev/null | grep -q '"central_rights"' && break
  sleep 0.1
done
ORDER=$($CTL central orders capture --file deploy/sample/order-web-1.json |
        sed -n 's/.*"order_id": *"\([^"]*\)".*/\1/p' | head -1)
sleep 0.5

cat <<MSG

Depot demo network is running (logs and data in $DEMO):
  depot-central  HTTP $DEPOT_CENTRAL   gRPC 127.0.0.1:$GRPC (health + reflection)
  wh-east        $WH
  store-soho     $ST

Try:
  export DEPOT_CENTRAL=$DEPOT_CENTRAL DEPOT_OPERATOR=\$USER
  build/node/depotctl central stock --sku TSHIRT-BLK-M     # network-wide stock by site
  build/node/depotctl central nodes                        # sync health of each node
  DEPOT_NODE=$ST build/node/depotctl reserve --sku MUG-LOGO --ref counter-1 --qty 1  # local rights
  DEPOT_NODE=$WH build/node/depotctl stock --sku YOGHURT-500
  DEPOT_NODE=$WH build/node/depotctl verify
  curl -s "$DEPOT_CENTRAL/v1/stock?sku=MUG-LOGO"

The order workflow (docs/ORDERS.md): order $ORDER was captured at central and released to wh-east.
  build/node/depotctl central orders show $ORDER           # routing reason, status, history
  DEPOT_NODE=$WH build/node/depotctl wave                  # a wave with its pick list (bin walk order)
  DEPOT_NODE=$WH build/node/depotctl picklist W1
  DEPOT_NODE=$WH build/node/depotctl pick $ORDER-1 --bin B-01-01 --item MUG-LOGO --qty 3
  DEPOT_NODE=$WH build/node/depotctl pick $ORDER-1 --bin A-01-01 --item TSHIRT-BLK-M --qty 1
  DEPOT_NODE=$WH build/node/depotctl pack $ORDER-1 --weight-g 900 --dims 300x200x100
  DEPOT_NODE=$WH build/node/depotctl ship $ORDER-1 --carrier UPS --tracking 1Z999
  build/node/depotctl central orders show $ORDER           # shipped, as the node reported
  DEPOT_NODE=$ST build/node/depotctl sell MUG-LOGO:1:1200  # a counter sale, works offline too
  DEPOT_NODE=$ST build/node/depotctl rights                # the store's selling rights and policy
  build/node/depotctl central rights --sku MUG-LOGO        # central's rights per site
  build/node/depotctl central listings marketplace         # published quantity per SKU
  build/node/depotctl central kpis

Everyday stock work (docs/OPERATIONS.md):
  DEPOT_NODE=$WH build/node/depotctl scan ']C101040063813339311728123110L0T-7'  # GS1: GTIN, expiry, lot
  DEPOT_NODE=$WH build/node/depotctl lot YOGHURT-500 L2611                      # a lot's history
  DEPOT_NODE=$WH build/node/depotctl count create --sku MUG-LOGO --bin B-01-01 --start  # blind count
  build/node/depotctl central transfer create --from wh-east --to store-soho --line MUG-LOGO:2
  build/node/depotctl central transfer in-transit

Stop it with: deploy/quickstart.sh --stop
MSG

#!/usr/bin/python3
"""A client not written in C++: generates Python stubs from proto/, reads network stock from a
real depot-central over gRPC after a real depot-node synced stock to it, and captures an order
there that is released to the node.

Run with Debian's interpreter (python3-grpcio, python3-protobuf):
  /usr/bin/python3 tests/python/central_client_test.py --central BIN --node BIN --proto-dir proto
Prints '2 passed, 0 failed' style summary; exit code 0 only when every check passed.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import grpc


def generate_stubs(proto_dir, out_dir):
    protos = [os.path.join("depot", "v1", p) for p in
              ("master.proto", "orders.proto", "rights.proto", "ledger.proto", "node_api.proto",
               "sync.proto", "central.proto")]
    cmd = ["protoc", f"-I{proto_dir}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
           "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"] + protos
    subprocess.run(cmd, check=True, cwd=proto_dir)
    for d in ("depot", os.path.join("depot", "v1")):
        open(os.path.join(out_dir, d, "__init__.py"), "a").close()
    sys.path.insert(0, out_dir)


def wait_port_file(path, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                return f.read()
        time.sleep(0.05)
    raise RuntimeError(f"{path} did not appear")


def http(method, url, body=None, content_type="application/json"):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": content_type,
                                          "X-Depot-Operator": "python-test"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as r:
        return r.status, r.read().decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--central", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--proto-dir", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="depot-python-")
    procs = []
    passed = failed = 0

    def check(name, cond, detail=""):
        nonlocal passed, failed
        if cond:
            passed += 1
            print(f"ok   {name}")
        else:
            failed += 1
            print(f"FAIL {name} {detail}")

    try:
        generate_stubs(os.path.abspath(args.proto_dir), tmp)
        from depot.v1 import central_pb2, central_pb2_grpc  # noqa: E402

        procs.append(subprocess.Popen(
            [args.central, "--db", f"{tmp}/central.db", "--grpc-port", "0", "--http-port", "0",
             "--port-file", f"{tmp}/central.port", "--log-level", "warn"],
            stdout=open(f"{tmp}/central.log", "w"), stderr=subprocess.STDOUT))
        ports = dict(line.split("=") for line in wait_port_file(f"{tmp}/central.port").split())
        channel = grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}")
        stub = central_pb2_grpc.CentralStub(channel)

        # The standard health service answers SERVING (status 1) to an empty request.
        health = channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5)
        check("grpc health service says SERVING", health == b"\x08\x01", repr(health))

        stub.Import(central_pb2.ImportRequest(kind="sites", csv="id,name,kind\npy-node,Python site,store\n"))
        stub.Import(central_pb2.ImportRequest(kind="skus", csv="code,name\nPY-1,Python mug\n"))
        stub.Import(central_pb2.ImportRequest(kind="bins", csv="site,code\npy-node,BIN-1\n"))
        try:
            stub.Import(central_pb2.ImportRequest(kind="colours", csv="x\n"))
            check("bad import is refused", False)
        except grpc.RpcError as e:
            check("bad import is refused with INVALID_ARGUMENT",
                  e.code() == grpc.StatusCode.INVALID_ARGUMENT, str(e.code()))

        procs.append(subprocess.Popen(
            [args.node, "--db", f"{tmp}/node.db", "--node-id", "py-node", "--port", "0",
             "--port-file", f"{tmp}/node.port", "--central", f"127.0.0.1:{ports['grpc']}",
             "--log-level", "warn"],
            stdout=open(f"{tmp}/node.log", "w"), stderr=subprocess.STDOUT))
        node = f"http://127.0.0.1:{wait_port_file(f'{tmp}/node.port').strip()}"
        deadline = time.time() + 15
        while time.time() < deadline:  # master data arrives through the feed
            try:
                if http("GET", f"{node}/v1/skus/PY-1")[0] == 200:
                    break
            except Exception:
                pass
            time.sleep(0.1)
        status, _ = http("POST", f"{node}/v1/receipts",
                         json.dumps({"sku": "PY-1", "bin": "BIN-1", "quantity": 7}))
        check("receipt at the node", status == 201, str(status))
        http("POST", f"{node}/v1/reservations",
             json.dumps({"sku": "PY-1", "reference": "o-1", "quantity": 2}))

        item = None
        deadline = time.time() + 15
        while time.time() < deadline:
            resp = stub.GetNetworkStock(central_pb2.NetworkStockRequest(sku="PY-1"), timeout=5)
            if resp.items and resp.items[0].on_hand == 7 and resp.items[0].reserved == 2:
                item = resp.items[0]
                break
            time.sleep(0.1)
        check("network stock over gRPC from Python",
              item is not None and item.site == "py-node" and item.available == 5, str(item))
        nodes = stub.ListNodes(central_pb2.ListNodesRequest(), timeout=5)
        check("node list shows the node", any(n.node_id == "py-node" for n in nodes.nodes))

        # Orders over gRPC: capture (the operator in call metadata), routed to the node that has
        # the stock, released there, and the same external id again is the same order.
        from depot.v1 import orders_pb2, orders_pb2_grpc  # noqa: E402
        stub.Import(central_pb2.ImportRequest(
            kind="channels",
            csv="id,name,site_priority,allow_split,review_above_cents\npy-shop,Py shop,,true,0\n"))
        orders = orders_pb2_grpc.OrdersStub(channel)
        meta = (("x-depot-operator", "python-test"),)
        request = orders_pb2.CaptureOrderRequest(
            channel="py-shop", external_id="PY-ORDER-1",
            lines=[orders_pb2.OrderLineInput(sku="PY-1", quantity=3, unit_price_cents=900)],
            ship_to=orders_pb2.Address(name="Guido", line1="1 Canal St", city="Amsterdam",
                                       postal_code="1012", country="NL"))
        captured = orders.Capture(request, timeout=5, metadata=meta)
        check("order captured over gRPC and routed to the node",
              len(captured.order.fulfilments) == 1 and
              captured.order.fulfilments[0].site == "py-node", str(captured))
        again = orders.Capture(request, timeout=5, metadata=meta)
        check("the same external order id is the same order",
              again.replayed and again.order.order_id == captured.order.order_id, str(again))
        fid = captured.order.fulfilments[0].fulfilment_id
        accepted = False
        deadline = time.time() + 15
        while time.time() < deadline and not accepted:
            try:  # 404 until the release arrives through the feed
                status, body = http("GET", f"{node}/v1/fulfilments/{fid}")
                accepted = status == 200 and json.loads(body)["status"] == "FULFILMENT_ACCEPTED"
            except urllib.error.HTTPError:
                pass
            time.sleep(0.05)
        check("the node accepted the released order", accepted)
        try:
            orders.Capture(orders_pb2.CaptureOrderRequest(
                channel="py-shop", external_id="PY-ORDER-2",
                lines=[orders_pb2.OrderLineInput(sku="PY-1", quantity=0)],
                ship_to=request.ship_to), timeout=5, metadata=meta)
            check("zero quantity is refused", False)
        except grpc.RpcError as e:
            check("zero quantity is refused with INVALID_ARGUMENT",
                  e.code() == grpc.StatusCode.INVALID_ARGUMENT, str(e.code()))
    except Exception as e:  # any unexpected error is a failure, with the logs
        failed += 1
        print(f"FAIL unexpected error: {e!r}")
        for log in ("central.log", "node.log"):
            p = os.path.join(tmp, log)
            if os.path.exists(p):
                print(f"--- {log}\n" + open(p).read()[-2000:])
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

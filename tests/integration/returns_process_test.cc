// Returns (docs/ORDERS.md "Returns") with real processes: a depot-central and two nodes on
// loopback, each node's sync stream through its own TcpProxy so both can be cut off from central.
//   - An order shipped by S1 is authorised for return at central; the RMA reaches every site.
//     Both sites are cut off; S2 (which did not ship it) receives the return, restocks it into a
//     bin (sellable again: the node's ATP and selling rights grow, verify stays clean) and
//     refunds; a counter return of more units than shipped is accepted at S2's counter. After
//     the links return central shows the RMA refunded at S2, raises return_over_shipped for the
//     counter return, and reports the turnaround KPI; central's mirror equals S2's stock.
//   - Bad input at central and at the nodes (unknown RMA or order, wrong site, quantity above
//     authorised or returnable) is refused with the error body and changes nothing.
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "depot/v1/returns.pb.h"
#include "tests/integration/cluster_util.h"
#include "tests/integration/tcp_proxy.h"

namespace depot::testing {
namespace {

constexpr const char* kWidget = sample::kPlain;

bool Connected(Http& node) { return Field(SyncState(node), "connected") == "true"; }

// Checks an error answer: status and the code and text of the error body.
void Refused(const http::ClientResponse& r, int status, const std::string& code,
             const std::string& text) {
  INFO(r.status << " " << r.body);
  CHECK(r.status == status);
  CHECK(absl::StrContains(r.body, absl::StrCat("\"code\":\"", code, "\"")));
  CHECK(absl::StrContains(r.body, text));
}

v1::ReceiveReturnRequest Receive(const std::string& rma, const std::string& sku, int64_t q,
                                 const std::string& reason = "",
                                 const std::string& order_id = "") {
  v1::ReceiveReturnRequest r;
  r.set_return_id(rma);
  r.set_order_id(order_id);
  auto* l = r.add_lines();
  l->set_sku(sku);
  l->set_quantity(q);
  l->set_reason(reason);
  return r;
}

v1::DisposeReturnRequest Restock(const std::string& sku, int64_t q, const std::string& bin) {
  v1::DisposeReturnRequest d;
  auto* l = d.add_lines();
  l->set_sku(sku);
  l->set_quantity(q);
  l->set_action("restock");
  l->set_bin(bin);
  return d;
}

struct ReturnsCluster {
  std::string dir;
  std::unique_ptr<CentralProcess> central;
  std::unique_ptr<TcpProxy> p1, p2;
  std::unique_ptr<NodeProcess> s1, s2;

  explicit ReturnsCluster(const std::string& prefix) : dir(TestDir(prefix)) {
    central = StartCentral(dir);
    ImportTwoSites(*central, dir,
                   "S1,Warehouse,warehouse,north\n"
                   "S2,Harbour store,store,north\n",
                   "market,Marketplace,S1,true,0\n");
    p1 = std::make_unique<TcpProxy>(central->grpc_port());
    p2 = std::make_unique<TcpProxy>(central->grpc_port());
    s1 = StartNode(dir, "S1", p1->address());
    s2 = StartNode(dir, "S2", p2->address());
    Http h1(s1->url()), h2(s2->url());
    WaitForMasterData(h1);
    WaitForMasterData(h2);
  }
};

// Ships an order of `qty` widgets from S1 (captured at central, waved, picked, packed, shipped).
v1::Order ShipFromS1(Http& c, Http& h1, const std::string& external_id, int64_t qty) {
  // Central allocates against the rights S1 granted it after its receipt; until they arrive
  // the order waits backordered and the re-routing pass releases it.
  v1::Order o = Capture(c, NewOrder("market", external_id, "north", {{kWidget, qty}}));
  bool ok = Eventually(
      [&] {
        o = GetOrder(c, o.order_id());
        return o.fulfilments_size() == 1;
      },
      kConvergeTimeout);
  INFO(MessageToJson(o));
  REQUIRE(ok);
  const std::string fid = o.fulfilments(0).fulfilment_id();
  WaitFulfilment(h1, fid, v1::FULFILMENT_ACCEPTED);
  v1::Wave wave = MakeWave(h1);
  PickAll(h1, wave, fid, [](const std::string& sku) { return sku; });
  PackAndShip(h1, fid, "1Z" + external_id);
  return WaitOrder(c, o.order_id(), v1::ORDER_SHIPPED);
}

v1::Return WaitReturn(Http& h, const std::string& id,
                      const std::function<bool(const v1::Return&)>& done) {
  v1::Return r;
  std::string last;
  bool ok = Eventually(
      [&] {
        auto resp = h.Send("GET", "/v1/returns/" + id);
        last = resp.body;
        if (resp.status != 200) return false;
        r = Parse<v1::Return>(resp.body);
        return done(r);
      },
      kConvergeTimeout);
  INFO("waiting at " << h.base() << " for return " << id << ": " << last);
  REQUIRE(ok);
  return r;
}

}  // namespace

TEST_CASE("a return shipped by one site is received at another while both are offline",
          "[integration][returns]") {
  ReturnsCluster cl("depot-returns-");
  Http c(cl.central->url()), h1(cl.s1->url()), h2(cl.s2->url());
  h1.WriteOk("/v1/receipts", Receipt(kWidget, sample::kBinA1, 10));
  h2.WriteOk("/v1/receipts", Receipt(kWidget, sample::kBinA1, 4));
  v1::Order o = ShipFromS1(c, h1, "RET-1", 3);
  REQUIRE(o.lines(0).shipped() == 3);

  // The RMA at central: 2 of the 3 shipped, damaged.
  v1::CreateReturnRequest rma_req;
  rma_req.set_order_id(o.order_id());
  auto* line = rma_req.add_lines();
  line->set_line_no(1);
  line->set_quantity(2);
  line->set_reason("damaged");
  auto rma = Parse<v1::Return>(PostStatus(c, "/v1/returns", rma_req, 201));
  const std::string id = rma.return_id();
  CHECK(id == "R00000001");
  CHECK(rma.status() == v1::RETURN_AUTHORISED);

  // Bad RMAs change nothing.
  {
    v1::CreateReturnRequest more = rma_req;
    Refused(c.Send("POST", "/v1/returns", MessageToJson(more)), 409, "FAILED_PRECONDITION",
            "2 asked, only 1 returnable (shipped 3, already authorised or returned 2)");
    v1::CreateReturnRequest unknown = rma_req;
    unknown.set_order_id("O99999999");
    Refused(c.Send("POST", "/v1/returns", MessageToJson(unknown)), 404, "NOT_FOUND",
            "unknown order 'O99999999'");
    v1::CreateReturnRequest bad_line = rma_req;
    bad_line.mutable_lines(0)->set_line_no(9);
    Refused(c.Send("POST", "/v1/returns", MessageToJson(bad_line)), 409, "FAILED_PRECONDITION",
            "has no line 9");
    v1::CreateReturnRequest bad_reason = rma_req;
    bad_reason.mutable_lines(0)->set_reason("meh");
    Refused(c.Send("POST", "/v1/returns", MessageToJson(bad_reason)), 400, "INVALID_ARGUMENT",
            "unknown return reason 'meh'");
    Refused(c.Send("GET", "/v1/returns/R00000077"), 404, "NOT_FOUND", "R00000077");
    CHECK(c.GetOk<v1::ListReturnsResponse>("/v1/returns").returns_size() == 1);
  }

  // Every site gets the RMA through its feed.
  WaitReturn(h1, id, [](const v1::Return& r) { return r.status() == v1::RETURN_AUTHORISED; });
  WaitReturn(h2, id, [](const v1::Return& r) { return r.status() == v1::RETURN_AUTHORISED; });
  RequireConverged(c, h2, "S2");
  const int64_t s2_before = NodeOnHand(h2, kWidget);

  // Both sites lose central.
  cl.p1->Cut();
  cl.p2->Cut();
  CHECK(Eventually([&] { return !Connected(h1) && !Connected(h2); }, kConvergeTimeout));

  // Offline at S2: refusals first, nothing changes.
  const std::string s2_returns = h2.Send("GET", "/v1/returns").body;
  Refused(h2.Send("POST", "/v1/returns", MessageToJson(Receive("R00000099", kWidget, 1))), 404,
          "NOT_FOUND", "unknown return authorisation 'R00000099'");
  Refused(h2.Send("POST", "/v1/returns", MessageToJson(Receive(id, kWidget, 3))), 409,
          "FAILED_PRECONDITION", "authorised 2, received 0, asked 3");
  Refused(h2.Send("POST", "/v1/returns/" + id + "/disposition",
                  MessageToJson(Restock(kWidget, 1, sample::kBinA2))),
          409, "FAILED_PRECONDITION", "has not been received at site 'S2'");
  CHECK(h2.Send("GET", "/v1/returns").body == s2_returns);
  CHECK(NodeOnHand(h2, kWidget) == s2_before);

  // Received, inspected and restocked, refunded: all offline.
  v1::ReceiveReturnRequest in = Receive(id, kWidget, 2);
  in.set_request_id("ret-rcv-1");
  auto received = Parse<v1::Return>(PostStatus(h2, "/v1/returns", in, 201));
  CHECK(received.status() == v1::RETURN_RECEIVED);
  CHECK(received.site() == "S2");
  PostStatus(h2, "/v1/returns", in, 200);  // a retry with the same request_id: replayed
  CHECK(NodeOnHand(h2, kWidget) == s2_before);  // waiting for inspection: not stock
  // S1 shipped the order but did not receive the return: the wrong site.
  Refused(h1.Send("POST", "/v1/returns/" + id + "/refund", R"({"amount_cents":"100"})"), 409,
          "FAILED_PRECONDITION", "has not been received at site 'S1'");
  std::this_thread::sleep_for(milliseconds(300));  // a measurable turnaround
  auto restocked = Parse<v1::Return>(PostStatus(h2, "/v1/returns/" + id + "/disposition",
                                                Restock(kWidget, 2, sample::kBinA2), 201));
  CHECK(restocked.status() == v1::RETURN_DISPOSED);
  CHECK(NodeOnHand(h2, kWidget) == s2_before + 2);  // sellable again
  {  // the selling-rights book sees the restocked units like any receipt
    auto rights = h2.GetOk<v1::NodeRightsResponse>(std::string("/v1/rights?sku=") + kWidget);
    REQUIRE(rights.books_size() == 1);
    CHECK(rights.books(0).on_hand() == s2_before + 2);
  }
  v1::RefundReturnRequest refund;
  refund.set_amount_cents(2000);
  auto refunded = Parse<v1::Return>(PostStatus(h2, "/v1/returns/" + id + "/refund", refund, 201));
  CHECK(refunded.status() == v1::RETURN_REFUNDED);
  Refused(h2.Send("POST", "/v1/returns/" + id + "/refund", MessageToJson(refund)), 409,
          "FAILED_PRECONDITION", "refunded already");
  // A counter return without RMA of more than was shipped: the store takes it, central checks.
  auto counter = Parse<v1::Return>(
      PostStatus(h2, "/v1/returns", Receive("", kWidget, 2, "no_longer_needed", o.order_id()), 201));
  CHECK_FALSE(counter.authorised());
  auto verify = h2.GetOk<v1::VerifyResponse>("/v1/verify");
  INFO(MessageToJson(verify));
  CHECK(verify.ok());

  // Central has not heard of any of it yet.
  CHECK(c.GetOk<v1::Return>("/v1/returns/" + id).status() == v1::RETURN_AUTHORISED);

  // The links return: central learns the receipt, disposition, refund and the counter return.
  cl.p1->Restore();
  cl.p2->Restore();
  v1::Return at_central = WaitReturn(
      c, id, [](const v1::Return& r) { return r.status() == v1::RETURN_REFUNDED; });
  CHECK(at_central.site() == "S2");
  CHECK(at_central.refund_cents() == 2000);
  CHECK(at_central.lines(0).restocked() == 2);
  CHECK(at_central.exceptions_size() == 0);
  WaitReturn(c, counter.return_id(), [](const v1::Return& r) { return r.site() == "S2"; });
  CHECK(Eventually([&] { return HasException(c, "return_over_shipped", o.order_id()); },
                   kConvergeTimeout));
  RequireConverged(c, h2, "S2");
  RequireConverged(c, h1, "S1");
  // S1 has learned that S2 received the RMA: receiving it there too is refused.
  WaitReturn(h1, id, [](const v1::Return& r) { return r.site() == "S2"; });
  const std::string s1_returns = h1.Send("GET", "/v1/returns").body;
  Refused(h1.Send("POST", "/v1/returns", MessageToJson(Receive(id, kWidget, 1))), 409,
          "FAILED_PRECONDITION", "was received at site 'S2'");
  CHECK(h1.Send("GET", "/v1/returns").body == s1_returns);

  auto kpi = c.GetOk<v1::ReturnKpiResponse>("/v1/kpi/returns?site=S2");
  INFO(MessageToJson(kpi));
  bool found = false;
  for (const auto& row : kpi.rows()) {
    if (row.reason() != "damaged") continue;
    found = true;
    CHECK(row.site() == "S2");
    CHECK(row.units() == 2);
    CHECK(row.disposed() == 1);
    CHECK(row.refunded() == 1);
    CHECK(row.disposition_avg_h() > 0);
    CHECK(row.refund_avg_h() >= row.disposition_avg_h());
  }
  CHECK(found);
  auto refunded_list = c.GetOk<v1::ListReturnsResponse>("/v1/returns?status=refunded");
  CHECK(refunded_list.returns_size() == 1);
  CHECK(refunded_list.kpi_size() == 1);
  verify = h2.GetOk<v1::VerifyResponse>("/v1/verify");
  CHECK(verify.ok());

  // depotctl shows both sides.
  ProcessResult node_list = CtlNode(*cl.s2, {"returns", "show", id});
  INFO(node_list.err);
  CHECK(node_list.exit_code == 0);
  CHECK(absl::StrContains(node_list.out, "RETURN_REFUNDED"));
  CHECK(absl::StrContains(CtlCentral(*cl.central, {"central", "returns", "list"}), id));
}

}  // namespace depot::testing

// Returns (node/returns.h, central/returns.h) on real SQLite files: RMAs at central and their
// refusals, receipt / disposition / refund at a node through the ledger's public API (with the
// stock effects and Verify), the merge of the node's updates at central with the exceptions
// (over-shipped, unknown serial, unknown order, other site), the turnaround KPI, and bad input
// that changes nothing.
#include <catch2/catch.hpp>

#include "central/returns.h"
#include "common/returns_rules.h"
#include "node/ledger.h"
#include "tests/unit/central_fixture.h"
#include "tests/unit/ledger_fixture.h"

using namespace depot;

namespace {

using Code = absl::StatusCode;

constexpr const char* kSkus =
    "code,gtin,name,unit,tracking,expiry_tracked,allow_negative,safety_stock\n"
    "W,,Widget,ea,none,false,false,0\n"
    "X,,Gadget,ea,none,false,false,0\n"
    "SER,,Phone,ea,serial,false,false,0\n";
constexpr const char* kBins = "code,zone,walk_order\nA1,A,1\nB1,B,2\n";

v1::Return Rma(const std::string& id, const std::string& order_id,
               std::vector<std::tuple<uint32_t, std::string, int64_t>> lines) {
  v1::Return r;
  r.set_return_id(id);
  r.set_order_id(order_id);
  r.set_authorised(true);
  r.set_status(v1::RETURN_AUTHORISED);
  for (auto& [no, sku, q] : lines) {
    auto* l = r.add_lines();
    l->set_line_no(no);
    l->set_sku(sku);
    l->set_authorised(q);
    l->set_reason("damaged");
  }
  return r;
}

struct NodeFixture : testing::LedgerFixture {
  uint64_t feed_seq = 0;
  NodeFixture() : LedgerFixture("depot-returns-", kSkus, kBins, "rita") {}

  void Feed(const v1::Return& rma) {
    v1::FeedEntry e;
    e.set_seq(++feed_seq);
    *e.mutable_return_authorisation() = rma;
    auto mark = ledger->ApplyFeed({e});
    INFO(mark.status().ToString());
    REQUIRE(mark.ok());
  }
  absl::StatusOr<v1::OperationResult> ReceiveReturn(
      const std::string& id, std::vector<std::tuple<std::string, int64_t, std::string>> lines,
      const std::string& order_id = "", std::vector<std::string> serials = {},
      const std::string& request_id = "") {
    v1::Operation op;
    auto* r = op.mutable_return_receive();
    r->set_return_id(id);
    r->set_order_id(order_id);
    r->set_request_id(request_id);
    for (auto& [sku, q, reason] : lines) {
      auto* l = r->add_lines();
      l->set_sku(sku);
      l->set_quantity(q);
      l->set_reason(reason);
      for (auto& s : serials) l->add_serials(s);
    }
    return ledger->Apply(ctx, op);
  }
  absl::StatusOr<v1::OperationResult> Dispose(const std::string& id, const std::string& sku,
                                              int64_t q, const std::string& action,
                                              const std::string& bin = "",
                                              std::vector<std::string> serials = {}) {
    v1::Operation op;
    auto* d = op.mutable_return_dispose();
    d->set_return_id(id);
    auto* l = d->add_lines();
    l->set_sku(sku);
    l->set_quantity(q);
    l->set_action(action);
    l->set_bin(bin);
    for (auto& s : serials) l->add_serials(s);
    return ledger->Apply(ctx, op);
  }
  absl::StatusOr<v1::OperationResult> Refund(const std::string& id, int64_t cents) {
    v1::Operation op;
    op.mutable_return_refund()->set_return_id(id);
    op.mutable_return_refund()->set_amount_cents(cents);
    return ledger->Apply(ctx, op);
  }
  int64_t OnHand(const std::string& sku) {
    auto a = ledger->GetAtp(sku);
    REQUIRE(a.ok());
    return a->on_hand();
  }
  std::vector<v1::ReturnUpdate> Updates() {
    auto events = ledger->ReadOutbox(0, 100000);
    REQUIRE(events.ok());
    std::vector<v1::ReturnUpdate> out;
    for (auto& e : *events) {
      if (e.has_return_update()) out.push_back(e.return_update());
    }
    return out;
  }
  void CheckVerify() {
    auto v = ledger->Verify();
    REQUIRE(v.ok());
    INFO(v->DebugString());
    CHECK(v->ok());
  }
  // What a refusal must leave untouched.
  std::tuple<uint64_t, uint64_t, std::string> Snapshot() {
    auto list = ledger->ListReturns(v1::RETURN_STATUS_UNSPECIFIED, 1000);
    REQUIRE(list.ok());
    return {ledger->LastSeq(), ledger->LastEventSeq(), list->SerializeAsString()};
  }
};

void Refused(const absl::StatusOr<v1::OperationResult>& r, Code code, const std::string& text) {
  INFO(r.status().ToString());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == code);
  CHECK_THAT(std::string(r.status().message()), Catch::Matchers::Contains(text));
}

v1::OperationResult Ok(const absl::StatusOr<v1::OperationResult>& r) {
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE_METHOD(NodeFixture, "returns: a node receives against an RMA, restocks, scraps, refunds",
                 "[returns]") {
  Ok(LedgerFixture::Receive("W", "A1", 5));
  Feed(Rma("R00000001", "O00000001", {{1, "W", 3}}));
  auto rma = ledger->GetReturn("R00000001");
  REQUIRE(rma.ok());
  CHECK(rma->status() == v1::RETURN_AUTHORISED);
  CHECK(rma->site().empty());

  clock.Advance(3600LL * 1'000'000);
  const auto& got = Ok(ReceiveReturn("R00000001", {{"W", 2, ""}}, "", {}, "rcv-1"));
  CHECK(got.ret().status() == v1::RETURN_RECEIVED);
  CHECK(got.ret().site() == "n1");
  CHECK(got.ret().lines(0).received() == 2);
  CHECK(got.ret().lines(0).reason() == "damaged");  // the RMA's reason
  CHECK(OnHand("W") == 5);  // uninspected returns are not stock
  // The same request again is a replay: nothing more received.
  const auto& again = Ok(ReceiveReturn("R00000001", {{"W", 2, ""}}, "", {}, "rcv-1"));
  CHECK(again.replayed());
  CHECK(ledger->GetReturn("R00000001")->lines(0).received() == 2);

  clock.Advance(2 * 3600LL * 1'000'000);
  const auto& restocked = Ok(Dispose("R00000001", "W", 1, "restock", "B1"));
  CHECK(restocked.ret().lines(0).restocked() == 1);
  CHECK(restocked.ret().status() == v1::RETURN_RECEIVED);  // one unit waits
  CHECK(OnHand("W") == 6);
  auto book = ledger->ListRights("W");  // the rights book sees it like any receipt
  REQUIRE(book.ok());
  REQUIRE(book->books_size() == 1);
  CHECK(book->books(0).on_hand() == 6);
  auto stock = ledger->GetStock("W", "");
  REQUIRE(stock.ok());
  bool in_b1 = false;
  for (const auto& b : stock->balances()) in_b1 = in_b1 || (b.bin() == "B1" && b.on_hand() == 1);
  CHECK(in_b1);
  const auto& scrapped = Ok(Dispose("R00000001", "W", 1, "scrap"));
  CHECK(scrapped.ret().status() == v1::RETURN_DISPOSED);
  CHECK(scrapped.ret().disposed_ms() > 0);
  CHECK(OnHand("W") == 6);  // scrapped units never re-entered stock

  const auto& refunded = Ok(Refund("R00000001", 1999));
  CHECK(refunded.ret().status() == v1::RETURN_REFUNDED);
  CHECK(refunded.ret().refund_cents() == 1999);
  CHECK(refunded.ret().currency() == "EUR");

  // The whole story went up to central: received, disposed twice, refunded.
  auto ups = Updates();
  REQUIRE(ups.size() == 4);
  CHECK(ups[0].change() == "received");
  CHECK(ups[1].change() == "disposed");
  CHECK(ups[3].change() == "refunded");
  CHECK(ups[3].ret().refund_cents() == 1999);
  // The restock is an ordinary receipt movement referencing the return.
  node::MovementFilter filter;
  filter.sku = "W";
  filter.reference = "R00000001";
  v1::MovementsResponse moves = *ledger->ListMovements(filter);
  REQUIRE(moves.movements_size() == 1);
  CHECK(moves.movements(0).type() == v1::RECEIPT);
  CHECK(moves.movements(0).reason() == "return");
  CheckVerify();

  // Restarted, the state is the same and the clock keeps increasing.
  Reopen();
  CHECK(ledger->GetReturn("R00000001")->status() == v1::RETURN_REFUNDED);
  auto list = ledger->ListReturns(v1::RETURN_REFUNDED, 10);
  REQUIRE(list.ok());
  CHECK(list->returns_size() == 1);
}

TEST_CASE_METHOD(NodeFixture, "returns: bad input at a node is refused and changes nothing",
                 "[returns]") {
  Ok(LedgerFixture::Receive("W", "A1", 5));
  Feed(Rma("R00000001", "O00000001", {{1, "W", 2}}));
  Feed(Rma("R00000002", "O00000002", {{1, "X", 1}}));
  const auto before = Snapshot();
  Refused(ReceiveReturn("R00000099", {{"W", 1, ""}}), Code::kNotFound,
          "unknown return authorisation 'R00000099'");
  Refused(ReceiveReturn("R00000001", {{"W", 3, ""}}), Code::kFailedPrecondition,
          "only 2 of SKU 'W' (line 1) left to receive on return authorisation 'R00000001': "
          "authorised 2, received 0, asked 3");
  Refused(ReceiveReturn("R00000001", {{"X", 1, ""}}), Code::kInvalidArgument,
          "has no line of SKU 'X'");
  Refused(ReceiveReturn("R00000001", {{"W", 0, ""}}), Code::kInvalidArgument, "quantity");
  Refused(ReceiveReturn("R00000001", {{"W", 1, "broken"}}), Code::kInvalidArgument,
          "unknown return reason 'broken'");
  Refused(ReceiveReturn("R00000001", {{"W", 1, ""}}, "O00000002"), Code::kInvalidArgument,
          "is for order 'O00000001'");
  // Counter returns need a reference, reasons and known SKUs.
  Refused(ReceiveReturn("", {{"W", 1, "damaged"}}), Code::kInvalidArgument,
          "order_id or external_ref");
  Refused(ReceiveReturn("", {{"W", 1, ""}}, "O1"), Code::kInvalidArgument, "needs a reason");
  Refused(ReceiveReturn("", {{"NOPE", 1, "other"}}, "O1"), Code::kNotFound, "NOPE");
  // Disposition and refund of a return not received here ("wrong site"), unknown ones.
  Refused(Dispose("R00000002", "X", 1, "scrap"), Code::kFailedPrecondition,
          "has not been received at site 'n1'");
  Refused(Refund("R00000002", 100), Code::kFailedPrecondition, "has not been received");
  Refused(Dispose("R00000099", "W", 1, "scrap"), Code::kNotFound, "unknown return 'R00000099'");
  CHECK(Snapshot() == before);

  // Central tells the site that another site received an RMA: receiving it here is refused.
  v1::Return elsewhere = Rma("R00000002", "O00000002", {{1, "X", 1}});
  elsewhere.set_site("S9");
  elsewhere.mutable_lines(0)->set_received(1);
  Feed(elsewhere);
  auto noted = ledger->GetReturn("R00000002");
  REQUIRE(noted.ok());
  CHECK(noted->site() == "S9");
  CHECK(noted->lines(0).received() == 0);  // only central's part is kept
  const auto with_notice = Snapshot();
  Refused(ReceiveReturn("R00000002", {{"X", 1, ""}}), Code::kFailedPrecondition,
          "return authorisation 'R00000002' was received at site 'S9'");
  Refused(Dispose("R00000002", "X", 1, "scrap"), Code::kFailedPrecondition,
          "was received at site 'S9', not here ('n1')");
  CHECK(Snapshot() == with_notice);

  Ok(ReceiveReturn("R00000001", {{"W", 1, ""}}));
  const auto after_receipt = Snapshot();
  Refused(Dispose("R00000001", "W", 2, "scrap"), Code::kFailedPrecondition,
          "only 1 of SKU 'W' (line 1) of return 'R00000001' wait for disposition: received 1, "
          "disposed 0, asked 2");
  Refused(Dispose("R00000001", "W", 1, "sell"), Code::kInvalidArgument, "unknown disposition");
  Refused(Dispose("R00000001", "W", 1, "restock"), Code::kInvalidArgument, "needs a bin");
  Refused(Dispose("R00000001", "W", 1, "restock", "NOBIN"), Code::kNotFound, "NOBIN");
  Refused(Dispose("R00000001", "W", 1, "restock", "STAGING"), Code::kInvalidArgument, "STAGING");
  Refused(Refund("R00000001", -5), Code::kInvalidArgument, "amount_cents");
  CHECK(Snapshot() == after_receipt);
  Ok(Refund("R00000001", 500));
  Refused(Refund("R00000001", 500), Code::kFailedPrecondition, "refunded already");
  CheckVerify();
}

TEST_CASE_METHOD(NodeFixture, "returns: a counter return at a node, serials, refurbish",
                 "[returns]") {
  Ok(LedgerFixture::Receive("SER", "A1", 1, "", "", {"SN-IN"}));
  // A serial in stock here cannot come back as a return.
  Refused(ReceiveReturn("", {{"SER", 1, "damaged"}}, "O7", {"SN-IN"}), Code::kFailedPrecondition,
          "is in stock here");
  Refused(ReceiveReturn("", {{"SER", 1, "damaged"}}, "O7", {}), Code::kInvalidArgument,
          "name 1 serials");
  const auto& got = Ok(ReceiveReturn("", {{"SER", 1, "wrong_item"}}, "O7", {"SN-1"}));
  const std::string id = got.ret().return_id();
  CHECK(id == "n1-LR1");
  CHECK_FALSE(got.ret().authorised());
  CHECK(got.ret().lines(0).serials(0) == "SN-1");
  Refused(Dispose(id, "SER", 1, "restock", "B1", {"SN-2"}), Code::kInvalidArgument,
          "serial 'SN-2' was not received");
  const auto& back = Ok(Dispose(id, "SER", 1, "restock", "B1", {"SN-1"}));
  CHECK(back.ret().status() == v1::RETURN_DISPOSED);
  CHECK(OnHand("SER") == 2);

  const auto& second = Ok(ReceiveReturn("", {{"W", 2, "no_longer_needed"}}, "O8"));
  CHECK(second.ret().return_id() == "n1-LR2");
  Ok(Dispose("n1-LR2", "W", 2, "refurbish"));
  CHECK(OnHand("W") == 0);
  Refused(ReceiveReturn("n1-LR2", {{"W", 1, ""}}), Code::kFailedPrecondition, "counter return");
  CheckVerify();
}

// ---- Central ------------------------------------------------------------------------------

namespace {

struct CentralFixture : testing::CentralWorld {
  central::ReturnsService returns{store->orders(), &clock, [this] { ++feed_changes; }};

  // An order of 3 A (line 1) and 1 B (line 2) on channel web, shipped by S1.
  v1::Order ShippedOrder(const std::string& ext) {
    Receive("S1", "A", 10);
    Receive("S1", "B", 10);
    v1::Order o = Capture(testing::Req("web", ext, {{"A", 3, 1000}, {"B", 1, 500}}));
    REQUIRE(o.fulfilments_size() == 1);
    REQUIRE(o.fulfilments(0).site() == "S1");
    Send("S1", testing::Upd(o, 0, v1::FULFILMENT_SHIPPED, "shipped"));
    return Get(o.order_id());
  }
  absl::StatusOr<v1::Return> Create(const std::string& order_id,
                                    std::vector<std::tuple<uint32_t, std::string, int64_t,
                                                           std::string>> lines) {
    v1::CreateReturnRequest q;
    q.set_order_id(order_id);
    for (auto& [no, sku, qty, reason] : lines) {
      auto* l = q.add_lines();
      l->set_line_no(no);
      l->set_sku(sku);
      l->set_quantity(qty);
      l->set_reason(reason);
    }
    return returns.Create(q, "carol");
  }
  // The node's report: the return's whole state.
  void Report(const std::string& site, v1::Return r, const std::string& change) {
    r.set_status(returns::DeriveStatus(r));
    v1::Event e;
    e.set_hlc(Hlc());
    auto* u = e.mutable_return_update();
    *u->mutable_ret() = r;
    u->set_change(change);
    Apply(site, {e});
  }
  std::vector<v1::FeedEntry> Rmas(const std::string& site) {
    auto f = store->ReadFeed(site, 0, 100000);
    REQUIRE(f.ok());
    std::vector<v1::FeedEntry> out;
    for (auto& e : *f) {
      if (e.has_return_authorisation()) out.push_back(e);
    }
    return out;
  }
  int ReturnCount() {
    auto l = returns.List({});
    REQUIRE(l.ok());
    return l->returns_size();
  }
};

}  // namespace

TEST_CASE_METHOD(CentralFixture, "returns: an RMA at central for shipped lines goes to every site",
                 "[returns]") {
  v1::Order o = ShippedOrder("ret-1");
  REQUIRE(o.lines(0).shipped() == 3);
  auto r = Create(o.order_id(), {{1, "", 2, "damaged"}});
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->return_id() == "R00000001");
  CHECK(r->status() == v1::RETURN_AUTHORISED);
  CHECK(r->lines(0).sku() == "A");
  CHECK(r->lines(0).authorised() == 2);
  CHECK(r->operator_id() == "carol");
  for (const char* site : {"S1", "S2", "S3"}) {
    auto feed = Rmas(site);
    REQUIRE(feed.size() == 1);
    CHECK(feed[0].return_authorisation().return_id() == "R00000001");
  }
  // By SKU, and the rest of line 1.
  auto r2 = Create(o.order_id(), {{0, "A", 1, "wrong_item"}, {0, "B", 1, "other"}});
  INFO(r2.status().ToString());
  REQUIRE(r2.ok());
  CHECK(r2->return_id() == "R00000002");
  CHECK(r2->lines_size() == 2);
  auto got = returns.Get("R00000002");
  REQUIRE(got.ok());
  CHECK(got->lines(1).line_no() == 2);
}

TEST_CASE_METHOD(CentralFixture, "returns: RMA refusals at central name the numbers, change nothing",
                 "[returns]") {
  v1::Order o = ShippedOrder("ret-2");
  REQUIRE(Create(o.order_id(), {{1, "", 2, "damaged"}}).ok());
  const int feeds = static_cast<int>(Rmas("S2").size());
  auto check = [&](absl::StatusOr<v1::Return> r, Code code, const std::string& text) {
    INFO(r.status().ToString());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == code);
    CHECK_THAT(std::string(r.status().message()), Catch::Matchers::Contains(text));
  };
  check(Create(o.order_id(), {{1, "", 2, "damaged"}}), Code::kFailedPrecondition,
        "line 1 (SKU 'A') of order " + o.order_id() +
            ": 2 asked, only 1 returnable (shipped 3, already authorised or returned 2)");
  check(Create("O99999999", {{1, "", 1, "damaged"}}), Code::kNotFound,
        "unknown order 'O99999999'");
  check(Create(o.order_id(), {{7, "", 1, "damaged"}}), Code::kFailedPrecondition, "has no line 7");
  check(Create(o.order_id(), {{0, "C", 1, "damaged"}}), Code::kFailedPrecondition,
        "has no line of SKU 'C'");
  check(Create(o.order_id(), {{1, "", 1, "broken"}}), Code::kInvalidArgument,
        "unknown return reason 'broken'");
  check(Create(o.order_id(), {{1, "", 0, "damaged"}}), Code::kInvalidArgument, "quantity");
  check(Create("", {{1, "", 1, "damaged"}}), Code::kInvalidArgument, "order_id");
  check(returns.Get("R00000042").status(), Code::kNotFound, "unknown return 'R00000042'");
  CHECK(ReturnCount() == 1);
  CHECK(static_cast<int>(Rmas("S2").size()) == feeds);
  // Nothing shipped yet: nothing returnable.
  Receive("S1", "A", 5);
  v1::Order open = Capture(testing::Req("web", "ret-2b", {{"A", 1, 1000}}));
  check(Create(open.order_id(), {{1, "", 1, "damaged"}}), Code::kFailedPrecondition,
        "only 0 returnable");
}

TEST_CASE_METHOD(CentralFixture, "returns: central merges node updates, raises exceptions, KPI",
                 "[returns]") {
  v1::Order o = ShippedOrder("ret-3");
  auto rma = Create(o.order_id(), {{1, "", 2, "damaged"}});
  REQUIRE(rma.ok());

  // S2 (which did not ship it) receives it, restocks and refunds; central follows.
  v1::Return state = *rma;
  state.set_site("S2");
  state.mutable_lines(0)->set_received(2);
  state.set_received_ms(NowMs());
  Report("S2", state, "received");
  auto seen = returns.Get(rma->return_id());
  REQUIRE(seen.ok());
  CHECK(seen->status() == v1::RETURN_RECEIVED);
  CHECK(seen->site() == "S2");
  CHECK(seen->lines(0).authorised() == 2);
  // The other sites learn where it went (they refuse to receive it then); S2 needs no echo.
  for (const char* site : {"S1", "S3"}) {
    auto feed = Rmas(site);
    REQUIRE(feed.size() == 2);
    CHECK(feed[1].return_authorisation().site() == "S2");
  }
  CHECK(Rmas("S2").size() == 1);

  clock.Advance(2 * 3600 * testing::kSecond);
  state.mutable_lines(0)->set_restocked(2);
  state.mutable_lines(0)->set_disposed_ms(NowMs());
  state.set_disposed_ms(NowMs());
  Report("S2", state, "disposed");
  clock.Advance(2 * 3600 * testing::kSecond);
  state.set_refunded_ms(NowMs());
  state.set_refund_cents(2000);
  state.set_currency("EUR");
  Report("S2", state, "refunded");
  seen = returns.Get(rma->return_id());
  REQUIRE(seen.ok());
  CHECK(seen->status() == v1::RETURN_REFUNDED);
  CHECK(seen->refund_cents() == 2000);
  CHECK(seen->exceptions_size() == 0);

  auto kpi = returns.Kpi("");
  REQUIRE(kpi.ok());
  REQUIRE(kpi->rows_size() == 1);
  CHECK(kpi->rows(0).site() == "S2");
  CHECK(kpi->rows(0).reason() == "damaged");
  CHECK(kpi->rows(0).units() == 2);
  CHECK(kpi->rows(0).disposition_avg_h() == Approx(2.0));
  CHECK(kpi->rows(0).refund_p50_h() == Approx(4.0));

  // A second site reporting the same RMA is flagged, not merged.
  Report("S3", state, "received");
  CHECK(Exceptions("return_other_site", o.order_id()).size() == 1);
  CHECK(returns.Get(rma->return_id())->site() == "S2");

  // A counter return at S3 of 2 more A: 4 returned, 3 shipped.
  v1::Return counter;
  counter.set_return_id("S3-LR1");
  counter.set_order_id(o.order_id());
  counter.set_received_ms(NowMs());
  counter.set_created_ms(NowMs());
  auto* l = counter.add_lines();
  l->set_line_no(1);
  l->set_sku("A");
  l->set_reason("no_longer_needed");
  l->set_received(2);
  Report("S3", counter, "received");
  auto over = Exceptions("return_over_shipped", o.order_id());
  REQUIRE(over.size() == 1);
  CHECK_THAT(over[0].message(), Catch::Matchers::Contains("4 units of SKU 'A' returned"));
  CHECK_THAT(over[0].message(), Catch::Matchers::Contains("only 3 shipped"));
  CHECK(over[0].node_id() == "S3");
  // Reported again (disposition): the exception is not raised twice.
  counter.mutable_lines(0)->set_scrapped(2);
  Report("S3", counter, "disposed");
  CHECK(Exceptions("return_over_shipped", o.order_id()).size() == 1);

  // A counter return for an order central does not know.
  v1::Return stray = counter;
  stray.set_return_id("S3-LR2");
  stray.set_order_id("O77777777");
  Report("S3", stray, "received");
  CHECK(Exceptions("return_unknown_order", "O77777777").size() == 1);

  auto listed = returns.List({});
  REQUIRE(listed.ok());
  CHECK(listed->returns_size() == 3);
  v1::ListReturnsRequest by_status;
  by_status.set_status(v1::RETURN_REFUNDED);
  CHECK(returns.List(by_status)->returns_size() == 1);
  CHECK(returns.List(by_status)->kpi_size() == 1);
}

TEST_CASE_METHOD(CentralFixture, "returns: a serial never shipped raises an exception at central",
                 "[returns]") {
  Receive("S1", "A", 10);
  v1::Order o = Capture(testing::Req("web", "ret-4", {{"A", 2, 1000}}));
  REQUIRE(o.fulfilments_size() == 1);
  // The shipment's consumption names the serials (a serial-tracked SKU).
  v1::Event consume = Movement(v1::CONSUME, "A", 2, o.fulfilments(0).fulfilment_id());
  consume.mutable_movement()->add_serials("SN-1");
  consume.mutable_movement()->add_serials("SN-2");
  Apply("S1", {consume});
  Send("S1", testing::Upd(o, 0, v1::FULFILMENT_SHIPPED, "shipped"));

  v1::Return counter;
  counter.set_return_id("S2-LR1");
  counter.set_order_id(o.order_id());
  counter.set_received_ms(NowMs());
  auto* l = counter.add_lines();
  l->set_line_no(1);
  l->set_sku("A");
  l->set_reason("damaged");
  l->set_received(2);
  l->add_serials("SN-1");
  l->add_serials("SN-9");
  Report("S2", counter, "received");
  auto ex = Exceptions("return_unknown_serial", o.order_id());
  REQUIRE(ex.size() == 1);
  CHECK_THAT(ex[0].message(), Catch::Matchers::Contains("serial 'SN-9'"));
  CHECK(Exceptions("return_over_shipped", o.order_id()).empty());
}

TEST_CASE("returns: turnaround KPI arithmetic", "[returns]") {
  std::vector<v1::Return> rs(3);
  for (int i = 0; i < 3; ++i) {
    rs[i].set_site("S1");
    rs[i].set_received_ms(1000);
    auto* l = rs[i].add_lines();
    l->set_reason("damaged");
    l->set_received(1);
    l->set_disposed_ms(1000 + (i + 1) * 3'600'000);
  }
  rs[2].set_refunded_ms(1000 + 3'600'000);
  auto k = central::ReturnKpi(rs);
  REQUIRE(k.rows_size() == 1);
  CHECK(k.rows(0).lines() == 3);
  CHECK(k.rows(0).disposed() == 3);
  CHECK(k.rows(0).disposition_avg_h() == Approx(2.0));
  CHECK(k.rows(0).disposition_p50_h() == Approx(2.0));
  CHECK(k.rows(0).refunded() == 1);
  CHECK(k.rows(0).refund_avg_h() == Approx(1.0));
}

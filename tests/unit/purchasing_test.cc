// Purchase orders and receiving against them on real SQLite files: the node's copy from the feed,
// receipts through the ledger's receipt path with over/under receipt rules, put-away
// suggestions, idempotency and refusals that change nothing (node/receiving.h); central's
// creation, CSV import (all or nothing), close/cancel, supplier defaults and the received
// quantities it learns from receipt events, with exceptions for receipts it cannot match
// (central/purchase_orders.h); and the pure rules (common/purchasing.h).
#include <catch2/catch.hpp>

#include "central/purchase_orders.h"
#include "common/purchasing.h"
#include "node/ledger.h"
#include "tests/unit/central_fixture.h"
#include "tests/unit/ledger_fixture.h"

using namespace depot;

namespace {

constexpr const char* kSkus =
    "code,gtin,name,unit,tracking,expiry_tracked,allow_negative,safety_stock\n"
    "W,,Widget,ea,none,false,false,0\n"
    "X,,Gadget,ea,none,false,false,0\n"
    "Y,,Gizmo,ea,none,false,false,0\n"
    "LOT,,Yoghurt,ea,lot,true,false,0\n";
constexpr const char* kBins = "code,zone,walk_order\nC1,C,3\nA1,A,1\nB1,B,2\n";

using Code = absl::StatusCode;

v1::PurchaseOrder Po(const std::string& id, const std::string& site,
                     std::vector<std::pair<std::string, int64_t>> lines, uint64_t version = 1,
                     uint32_t tolerance = 0) {
  v1::PurchaseOrder po;
  po.set_po_id(id);
  po.set_supplier("ACME");
  po.set_site(site);
  po.set_expected_date("2096-12-01");
  uint32_t n = 0;
  for (auto& [sku, q] : lines) {
    auto* l = po.add_lines();
    l->set_line_no(++n);
    l->set_sku(sku);
    l->set_ordered(q);
  }
  po.set_status(v1::PO_OPEN);
  po.set_version(version);
  po.set_receipt_tolerance_percent(tolerance);
  return po;
}

struct NodeFixture : testing::LedgerFixture {
  uint64_t feed_seq = 0;
  NodeFixture() : LedgerFixture("depot-purchasing-", kSkus, kBins, "rita") {}

  void Feed(const v1::PurchaseOrder& po) {
    v1::FeedEntry e;
    e.set_seq(++feed_seq);
    *e.mutable_purchase_order() = po;
    auto mark = ledger->ApplyFeed({e});
    INFO(mark.status().ToString());
    REQUIRE(mark.ok());
    REQUIRE(*mark == feed_seq);
  }
  struct Line {
    std::string sku;
    int64_t qty;
    std::string bin = "";
    std::string lot = "";
    std::string expiry = "";
  };
  absl::StatusOr<v1::OperationResult> ReceivePo(const std::string& po_id, std::vector<Line> lines,
                                                const std::string& request_id = "") {
    v1::Operation op;
    auto* r = op.mutable_po_receive();
    r->set_po_id(po_id);
    r->set_request_id(request_id);
    for (const auto& l : lines) {
      auto* x = r->add_lines();
      x->set_sku(l.sku);
      x->set_quantity(l.qty);
      x->set_bin(l.bin);
      x->set_lot(l.lot);
      x->set_expiry(l.expiry);
    }
    return ledger->Apply(ctx, op);
  }
  v1::PurchaseOrder Get(const std::string& id) {
    auto po = ledger->GetPurchaseOrder(id);
    INFO(po.status().ToString());
    REQUIRE(po.ok());
    return *po;
  }
  int64_t OnHand(const std::string& sku) {
    auto atp = ledger->GetAtp(sku);
    REQUIRE(atp.ok());
    return atp->on_hand();
  }
  v1::PutawaySuggestion Putaway(const std::string& sku, const std::string& lot = "") {
    auto s = ledger->SuggestPutaway(sku, lot);
    INFO(s.status().ToString());
    REQUIRE(s.ok());
    return *s;
  }
  // Refused with `code`, a message containing `text`, and nothing written.
  void Refused(const absl::StatusOr<v1::OperationResult>& r, Code code, const std::string& text) {
    INFO(r.status().ToString());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == code);
    CHECK_THAT(std::string(r.status().message()), Catch::Contains(text));
  }
};

}  // namespace

TEST_CASE("purchasing rules: tolerance, status, validation", "[purchasing]") {
  CHECK(purchasing::MaxReceivable(10, 0) == 10);
  CHECK(purchasing::MaxReceivable(10, 10) == 11);
  CHECK(purchasing::MaxReceivable(10, 15) == 11);  // floor
  CHECK(purchasing::MaxReceivable(7, 100) == 14);

  auto po = Po("PO-1", "n1", {{"W", 10}, {"X", 5}});
  CHECK(purchasing::DeriveStatus(po) == v1::PO_OPEN);
  po.mutable_lines(0)->set_received(3);
  CHECK(purchasing::DeriveStatus(po) == v1::PO_PARTIALLY_RECEIVED);
  po.mutable_lines(0)->set_received(10);
  po.mutable_lines(1)->set_received(6);
  CHECK(purchasing::DeriveStatus(po) == v1::PO_RECEIVED);
  po.set_status(v1::PO_CLOSED_SHORT);
  CHECK(purchasing::DeriveStatus(po) == v1::PO_CLOSED_SHORT);

  CHECK(purchasing::Validate(Po("PO-1", "S1", {{"W", 1}})).ok());
  CHECK(purchasing::Validate(Po("PO-1", "S1", {})).code() == Code::kInvalidArgument);
  CHECK(purchasing::Validate(Po("PO-1", "S1", {{"W", 0}})).code() == Code::kInvalidArgument);
  CHECK(purchasing::Validate(Po("PO-1", "S1", {{"W", 1}, {"W", 2}})).code() ==
        Code::kInvalidArgument);
  auto bad_date = Po("PO-1", "S1", {{"W", 1}});
  bad_date.set_expected_date("2026-13-01");
  CHECK(purchasing::Validate(bad_date).code() == Code::kInvalidArgument);

  v1::PurchaseOrderStatus s;
  CHECK(purchasing::ParseStatus("partially_received", &s));
  CHECK(s == v1::PO_PARTIALLY_RECEIVED);
  CHECK(purchasing::ParseStatus("PO_CANCELLED", &s));
  CHECK(s == v1::PO_CANCELLED);
  CHECK_FALSE(purchasing::ParseStatus("shipped", &s));
}

TEST_CASE("purchasing node: the feed's PO, partial and complete receipt", "[purchasing]") {
  NodeFixture f;
  f.Feed(Po("PO-1", "n1", {{"W", 10}, {"X", 4}}));
  auto list = f.ledger->ListPurchaseOrders(v1::PO_STATUS_UNSPECIFIED, 100);
  REQUIRE(list.ok());
  REQUIRE(list->purchase_orders_size() == 1);
  CHECK(list->purchase_orders(0).status() == v1::PO_OPEN);

  // Under-receipt leaves the line open.
  const uint64_t events_before = f.ledger->LastEventSeq();
  auto r = f.ReceivePo("PO-1", {{"W", 6, "B1"}});
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->movements_size() == 1);
  const v1::Movement& m = r->movements(0);
  CHECK(m.type() == v1::RECEIPT);
  CHECK(m.reason() == "po");
  CHECK(m.reference() == "PO-1");
  CHECK(m.bin() == "B1");
  CHECK(m.operator_id() == "rita");
  CHECK(r->po_receipt().purchase_order().status() == v1::PO_PARTIALLY_RECEIVED);
  CHECK(r->po_receipt().purchase_order().lines(0).received() == 6);
  REQUIRE(r->po_receipt().putaway_size() == 1);
  CHECK(r->po_receipt().putaway(0).reason() == "named");
  CHECK(f.OnHand("W") == 6);
  CHECK(f.Get("PO-1").status() == v1::PO_PARTIALLY_RECEIVED);
  // The receipt's movement event is in the outbox for central (and perhaps a rights event).
  auto events = f.ledger->ReadOutbox(events_before, 100);
  REQUIRE(events.ok());
  bool found = false;
  for (const auto& e : *events) {
    if (e.has_movement() && e.movement().reference() == "PO-1") found = true;
  }
  CHECK(found);

  // The rest, two lines in one operation, bins suggested.
  r = f.ReceivePo("PO-1", {{"W", 4}, {"X", 4}});
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->movements_size() == 2);
  REQUIRE(r->po_receipt().putaway_size() == 2);
  CHECK(r->po_receipt().putaway(0).bin() == "B1");  // already holds W
  CHECK(r->po_receipt().putaway(0).reason() == "holds_sku");
  CHECK(r->po_receipt().putaway(1).bin() == "A1");  // X: the first empty bin by walk order
  CHECK(r->po_receipt().putaway(1).reason() == "empty_bin");
  auto po = f.Get("PO-1");
  CHECK(po.status() == v1::PO_RECEIVED);
  CHECK(po.lines(0).received() == 10);
  CHECK(po.lines(1).received() == 4);
  CHECK(f.OnHand("W") == 10);
  CHECK(f.OnHand("X") == 4);
  auto verify = f.ledger->Verify();
  REQUIRE(verify.ok());
  CHECK(verify->ok());

  // It survives a restart.
  f.Reopen();
  CHECK(f.Get("PO-1").status() == v1::PO_RECEIVED);
}

TEST_CASE("purchasing node: over/under receipt rules and refusals change nothing",
          "[purchasing]") {
  NodeFixture f;
  f.Feed(Po("PO-T", "n1", {{"W", 10}, {"X", 5}}, 1, /*tolerance=*/10));
  f.Feed(Po("PO-OTHER", "n2", {{"W", 1}}));
  const uint64_t seq0 = f.ledger->LastSeq();
  const uint64_t events0 = f.ledger->LastEventSeq();

  f.Refused(f.ReceivePo("PO-NONE", {{"W", 1, "A1"}}), Code::kNotFound, "unknown purchase order");
  f.Refused(f.ReceivePo("PO-OTHER", {{"W", 1, "A1"}}), Code::kFailedPrecondition,
            "is for site 'n2'");
  f.Refused(f.ReceivePo("PO-T", {{"Y", 1, "A1"}}), Code::kInvalidArgument,
            "SKU 'Y' is not on purchase order 'PO-T'");
  f.Refused(f.ReceivePo("PO-T", {{"W", 0, "A1"}}), Code::kInvalidArgument, "positive");
  f.Refused(f.ReceivePo("PO-T", {}), Code::kInvalidArgument, "at least one line");
  // Tolerance 10% of 10: at most 11; 12 is refused naming the line and the allowed maximum,
  // also when split over two request lines.
  f.Refused(f.ReceivePo("PO-T", {{"W", 12, "A1"}}), Code::kFailedPrecondition,
            "line 1 (SKU 'W'): ordered 10, received 0, receiving 12; at most 11");
  f.Refused(f.ReceivePo("PO-T", {{"W", 6, "A1"}, {"W", 6, "B1"}}), Code::kFailedPrecondition,
            "at most 11");
  // All lines or nothing: the second line's bin is unknown, so the first is not written either.
  f.Refused(f.ReceivePo("PO-T", {{"W", 2, "A1"}, {"X", 1, "NOPE"}}), Code::kNotFound,
            "unknown bin 'NOPE'");
  // Nothing changed by any of these.
  CHECK(f.ledger->LastSeq() == seq0);
  CHECK(f.ledger->LastEventSeq() == events0);
  CHECK(f.OnHand("W") == 0);
  CHECK(f.Get("PO-T").lines(0).received() == 0);
  CHECK(f.Get("PO-T").status() == v1::PO_OPEN);

  // Within tolerance is fine; then one more unit is not.
  auto r = f.ReceivePo("PO-T", {{"W", 11, "A1"}});
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  f.Refused(f.ReceivePo("PO-T", {{"W", 1, "A1"}}), Code::kFailedPrecondition, "at most 0 more");
  CHECK(f.Get("PO-T").status() == v1::PO_PARTIALLY_RECEIVED);  // X is still open

  // A plain receipt may not pose as a PO receipt.
  v1::Operation plain;
  auto* rc = plain.mutable_receipt();
  rc->set_sku("W");
  rc->set_bin("A1");
  rc->set_quantity(1);
  rc->set_reason("po");
  rc->set_reference("PO-T");
  f.Refused(f.ledger->Apply(f.ctx, plain), Code::kInvalidArgument, "purchase order");

  // Central cancels (a newer version): refused from then on; the node keeps its received units.
  auto cancelled = Po("PO-T", "n1", {{"W", 10}, {"X", 5}}, 2, 10);
  cancelled.set_status(v1::PO_CLOSED_SHORT);
  f.Feed(cancelled);
  auto po = f.Get("PO-T");
  CHECK(po.status() == v1::PO_CLOSED_SHORT);
  CHECK(po.lines(0).received() == 11);
  f.Refused(f.ReceivePo("PO-T", {{"X", 1, "A1"}}), Code::kFailedPrecondition, "closed_short");
  // An older version arriving later changes nothing.
  f.Feed(Po("PO-T", "n1", {{"W", 10}, {"X", 5}}, 1, 10));
  CHECK(f.Get("PO-T").status() == v1::PO_CLOSED_SHORT);
}

TEST_CASE("purchasing node: request_id replays a PO receipt", "[purchasing]") {
  NodeFixture f;
  f.Feed(Po("PO-R", "n1", {{"W", 5}}));
  auto first = f.ReceivePo("PO-R", {{"W", 2, "A1"}}, "scan-1");
  REQUIRE(first.ok());
  const uint64_t seq = f.ledger->LastSeq();
  auto again = f.ReceivePo("PO-R", {{"W", 2, "A1"}}, "scan-1");
  REQUIRE(again.ok());
  CHECK(again->replayed());
  CHECK(again->po_receipt().purchase_order().lines(0).received() == 2);
  CHECK(f.ledger->LastSeq() == seq);
  CHECK(f.Get("PO-R").lines(0).received() == 2);
  auto other = f.ReceivePo("PO-R", {{"W", 3, "A1"}}, "scan-1");
  REQUIRE_FALSE(other.ok());
  CHECK(other.status().code() == Code::kAlreadyExists);
}

TEST_CASE("purchasing node: put-away suggestions", "[purchasing]") {
  NodeFixture f;
  // Nothing anywhere: the first empty bin by walk order (A1 has walk order 1).
  auto s = f.Putaway("W");
  CHECK(s.bin() == "A1");
  CHECK(s.reason() == "empty_bin");
  CHECK(s.walk_order() == 1);
  // A bin that holds the SKU wins, the one with the most units.
  REQUIRE(f.Receive("W", "C1", 5).ok());
  REQUIRE(f.Receive("W", "B1", 2).ok());
  s = f.Putaway("W");
  CHECK(s.bin() == "C1");
  CHECK(s.reason() == "holds_sku");
  CHECK(s.on_hand() == 5);
  // Another SKU: the empty bin (A1; B1 and C1 hold W).
  CHECK(f.Putaway("X").bin() == "A1");
  // With a lot: a bin with that lot; a new lot goes to an empty bin.
  REQUIRE(f.Receive("LOT", "A1", 3, "L1", "2097-01-01").ok());
  CHECK(f.Putaway("LOT", "L1").bin() == "A1");
  s = f.Putaway("LOT", "L2");
  CHECK(s.reason() == "none");  // every bin holds something
  CHECK(s.bin().empty());
  CHECK(f.Putaway("LOT").bin() == "A1");
  // Receiving without a bin when none fits is refused and changes nothing.
  f.Feed(Po("PO-L", "n1", {{"LOT", 5}}));
  const uint64_t seq = f.ledger->LastSeq();
  f.Refused(f.ReceivePo("PO-L", {{"LOT", 1, "", "L2", "2097-02-01"}}), Code::kFailedPrecondition,
            "name a bin");
  CHECK(f.ledger->LastSeq() == seq);
  // Unknown SKU.
  auto unknown = f.ledger->SuggestPutaway("NOPE", "");
  CHECK(unknown.status().code() == Code::kNotFound);
}

namespace {

struct CentralFixture : testing::CentralWorld {
  central::PurchaseOrderService pos{store->purchase_orders(), &clock, [this] { ++feed_changes; }};

  v1::PurchaseOrder Create(v1::PurchaseOrder po) {
    po.clear_status();
    po.clear_version();
    auto r = pos.Create(po);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    return *r;
  }
  std::vector<v1::PurchaseOrder> FedPos(const std::string& site) {
    auto f = store->ReadFeed(site, 0, 100000);
    REQUIRE(f.ok());
    std::vector<v1::PurchaseOrder> out;
    for (auto& e : *f) {
      if (e.has_purchase_order()) out.push_back(e.purchase_order());
    }
    return out;
  }
  v1::Event PoReceipt(const std::string& po_id, const std::string& sku, int64_t qty) {
    v1::Event e = Movement(v1::RECEIPT, sku, qty, po_id);
    e.mutable_movement()->set_reason("po");
    return e;
  }
  v1::PurchaseOrder GetPo(const std::string& id) {
    auto po = pos.Get(id);
    INFO(po.status().ToString());
    REQUIRE(po.ok());
    return *po;
  }
  std::vector<v1::ExceptionEntry> Kind(const std::string& kind) {
    return Exceptions(kind, "");
  }
};

}  // namespace

TEST_CASE("purchasing central: create, feed, receipts from events, close", "[purchasing]") {
  CentralFixture w;
  auto po = w.Create(Po("PO-1", "S1", {{"A", 10}, {"B", 5}}));
  CHECK(po.status() == v1::PO_OPEN);
  CHECK(po.version() == 1);
  CHECK(po.receipt_tolerance_percent() == 0);
  auto fed = w.FedPos("S1");
  REQUIRE(fed.size() == 1);
  CHECK(fed[0].po_id() == "PO-1");
  CHECK(w.FedPos("S2").empty());
  CHECK(w.feed_changes > 0);

  // The site's receipt events (reason po, reference = PO id) update received and status.
  w.Apply("S1", w.PoReceipt("PO-1", "A", 4));
  po = w.GetPo("PO-1");
  CHECK(po.lines(0).received() == 4);
  CHECK(po.status() == v1::PO_PARTIALLY_RECEIVED);
  // A plain receipt with the same reference but another reason is not a PO receipt.
  w.Apply("S1", w.Movement(v1::RECEIPT, "A", 1, "PO-1"));
  CHECK(w.GetPo("PO-1").lines(0).received() == 4);
  w.Apply("S1", {w.PoReceipt("PO-1", "A", 6), w.PoReceipt("PO-1", "B", 5)});
  po = w.GetPo("PO-1");
  CHECK(po.status() == v1::PO_RECEIVED);
  CHECK(w.Kind("po_over_receipt").empty());

  // What central cannot match raises exceptions, and the stream goes on.
  w.Apply("S1", w.PoReceipt("PO-1", "A", 1));  // over (tolerance 0)
  w.Apply("S1", w.PoReceipt("PO-1", "C", 2));  // not on the PO
  w.Apply("S1", w.PoReceipt("PO-404", "A", 1));
  w.Apply("S2", w.PoReceipt("PO-1", "A", 1));  // another site's PO
  auto over = w.Kind("po_over_receipt");
  REQUIRE(over.size() == 1);
  CHECK_THAT(over[0].message(), Catch::Contains("line 1"));
  CHECK(over[0].node_id() == "S1");
  CHECK(over[0].sku() == "A");
  CHECK(w.Kind("po_not_on_order").size() == 1);
  CHECK(w.Kind("po_unknown").size() == 1);
  CHECK(w.Kind("po_wrong_site").size() == 1);
  CHECK(w.GetPo("PO-1").lines(0).received() == 11);  // the physical fact still counts

  // Close short: only while open quantity is left.
  v1::PurchaseOrderActionRequest close;
  close.set_po_id("PO-1");
  CHECK(w.pos.Close(close).status().code() == Code::kFailedPrecondition);  // fully received
  w.Create(Po("PO-2", "S1", {{"A", 10}}));
  w.Apply("S1", w.PoReceipt("PO-2", "A", 3));
  close.set_po_id("PO-2");
  close.set_note("supplier out of stock");
  v1::PurchaseOrderActionRequest cancel = close;
  CHECK(w.pos.Cancel(cancel).status().code() == Code::kFailedPrecondition);  // goods came
  auto closed = w.pos.Close(close);
  REQUIRE(closed.ok());
  CHECK(closed->status() == v1::PO_CLOSED_SHORT);
  CHECK(closed->version() == 2);
  CHECK(closed->note() == "supplier out of stock");
  fed = w.FedPos("S1");
  REQUIRE(fed.size() == 3);
  CHECK(fed.back().version() == 2);
  CHECK(fed.back().status() == v1::PO_CLOSED_SHORT);
  CHECK(w.pos.Close(close).status().code() == Code::kFailedPrecondition);  // already closed
  // A receipt after the close (made offline) counts and is flagged.
  w.Apply("S1", w.PoReceipt("PO-2", "A", 2));
  CHECK(w.GetPo("PO-2").lines(0).received() == 5);
  CHECK(w.GetPo("PO-2").status() == v1::PO_CLOSED_SHORT);
  CHECK(w.Kind("po_receipt_after_close").size() == 1);

  // Cancel while nothing was received.
  w.Create(Po("PO-3", "S2", {{"B", 1}}));
  cancel.set_po_id("PO-3");
  auto c = w.pos.Cancel(cancel);
  REQUIRE(c.ok());
  CHECK(c->status() == v1::PO_CANCELLED);

  auto list = w.pos.List("S1", "", "", "", 0);
  REQUIRE(list.ok());
  CHECK(list->purchase_orders_size() == 2);
  list = w.pos.List("", "", "cancelled", "", 0);
  REQUIRE(list.ok());
  REQUIRE(list->purchase_orders_size() == 1);
  CHECK(list->purchase_orders(0).po_id() == "PO-3");
  CHECK(w.pos.List("", "", "bogus", "", 0).status().code() == Code::kInvalidArgument);
}

TEST_CASE("purchasing central: bad POs are refused, supplier default tolerance",
          "[purchasing]") {
  CentralFixture w;
  auto create = [&](v1::PurchaseOrder po) { return w.pos.Create(po).status().code(); };
  CHECK(create(Po("PO-1", "S9", {{"A", 1}})) == Code::kNotFound);
  CHECK(create(Po("PO-1", "S1", {{"NOPE", 1}})) == Code::kNotFound);
  CHECK(create(Po("PO-1", "S1", {{"A", -1}})) == Code::kInvalidArgument);
  CHECK(create(Po("PO-1", "S1", {{"A", 1}, {"A", 1}})) == Code::kInvalidArgument);
  CHECK(create(Po("", "S1", {{"A", 1}})) == Code::kInvalidArgument);
  CHECK(w.FedPos("S1").empty());
  auto list = w.pos.List("", "", "", "", 0);
  REQUIRE(list.ok());
  CHECK(list->purchase_orders_size() == 0);

  v1::Supplier acme;
  acme.set_id("ACME");
  acme.set_receipt_tolerance_percent(20);
  auto s = w.pos.SetSupplier(acme);
  REQUIRE(s.ok());
  CHECK(s->version() == 1);
  auto po = Po("PO-1", "S1", {{"A", 10}});
  po.clear_receipt_tolerance_percent();  // unset: the supplier's default
  CHECK(w.Create(po).receipt_tolerance_percent() == 20);
  po = Po("PO-2", "S1", {{"A", 10}}, 1, 5);  // explicit wins
  CHECK(w.Create(po).receipt_tolerance_percent() == 5);
  CHECK(w.pos.Create(Po("PO-1", "S1", {{"A", 1}})).status().code() == Code::kAlreadyExists);
  w.Apply("S1", w.PoReceipt("PO-1", "A", 12));  // 20% of 10: 12 allowed
  CHECK(w.Kind("po_over_receipt").empty());
}

TEST_CASE("purchasing central: CSV import is all or nothing, errors name the line",
          "[purchasing]") {
  CentralFixture w;
  const std::string header = "po,supplier,site,expected_date,line,sku,quantity\n";
  // Line 4: unknown SKU; line 5: bad quantity; line 6: header fields differ from line 2's.
  auto bad = w.pos.Import(header +
                          "PO-1,ACME,S1,2096-12-01,1,A,10\n"
                          "PO-1,ACME,S1,2096-12-01,2,B,5\n"
                          "PO-2,ACME,S2,,1,NOPE,1\n"
                          "PO-3,ACME,S2,,1,A,x\n"
                          "PO-1,OTHER,S1,2096-12-01,3,C,1\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kInvalidArgument);
  const std::string msg(bad.status().message());
  CHECK_THAT(msg, Catch::Contains("nothing imported"));
  CHECK_THAT(msg, Catch::Contains("line 5: quantity 'x'"));
  CHECK_THAT(msg, Catch::Contains("line 6:"));
  // The unknown SKU is found against the store only once the file parses.
  auto bad2 = w.pos.Import(header + "PO-1,ACME,S1,,1,A,10\nPO-2,ACME,S2,,1,NOPE,1\n");
  REQUIRE_FALSE(bad2.ok());
  CHECK_THAT(std::string(bad2.status().message()), Catch::Contains("line 3:"));
  CHECK_THAT(std::string(bad2.status().message()), Catch::Contains("unknown SKU 'NOPE'"));
  auto dup = w.pos.Import(header + "PO-1,ACME,S1,,1,A,10\nPO-1,ACME,S1,,2,A,1\n");
  REQUIRE_FALSE(dup.ok());
  CHECK_THAT(std::string(dup.status().message()), Catch::Contains("line 3:"));
  auto list = w.pos.List("", "", "", "", 0);
  REQUIRE(list.ok());
  CHECK(list->purchase_orders_size() == 0);
  CHECK(w.FedPos("S1").empty());

  auto ok = w.pos.Import(header +
                         "PO-1,ACME,S1,2096-12-01,1,A,10\n"
                         "PO-1,ACME,S1,2096-12-01,2,B,5\n"
                         "PO-2,BOLT,S2,,,C,7\n");
  INFO(ok.status().ToString());
  REQUIRE(ok.ok());
  CHECK(ok->purchase_orders() == 2);
  CHECK(ok->lines() == 3);
  CHECK(w.GetPo("PO-1").lines_size() == 2);
  CHECK(w.GetPo("PO-2").lines(0).line_no() == 1);
  CHECK(w.FedPos("S1").size() == 1);
  CHECK(w.FedPos("S2").size() == 1);
  // Importing a PO id that exists is refused, naming the line.
  auto again = w.pos.Import(header + "PO-9,ACME,S1,,1,A,1\nPO-2,ACME,S2,,1,A,1\n");
  REQUIRE_FALSE(again.ok());
  CHECK_THAT(std::string(again.status().message()), Catch::Contains("line 3: purchase order 'PO-2' already exists"));
  CHECK(w.pos.Get("PO-9").status().code() == Code::kNotFound);
}

TEST_CASE("purchasing central: a restore that loses receipt events takes them back out",
          "[purchasing]") {
  CentralFixture w;
  w.Create(Po("PO-1", "S1", {{"A", 10}}));
  w.Apply("S1", w.PoReceipt("PO-1", "A", 4));
  const uint64_t kept = w.seq["S1"];
  w.Apply("S1", w.PoReceipt("PO-1", "A", 6));
  CHECK(w.GetPo("PO-1").status() == v1::PO_RECEIVED);
  // The node comes back from a backup taken after the first receipt.
  auto reversed = w.store->BeginEpoch("S1", 8, kept);
  REQUIRE(reversed.ok());
  CHECK(*reversed == 1);
  auto po = w.GetPo("PO-1");
  CHECK(po.lines(0).received() == 4);
  CHECK(po.status() == v1::PO_PARTIALLY_RECEIVED);
}

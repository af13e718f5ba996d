// Cycle counts (node/counts.h) through the ledger's public API on a real SQLite file: SYNC.md
// invariant 6 with movements interleaved between start, submit and approval; blind views;
// tolerance and supervisor approval (four eyes), rejection and blind recount; the KPI; the ABC
// rule; and refusals that change nothing.
#include <catch2/catch.hpp>

#include "common/stock_rules.h"
#include "node/counts.h"
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
    "Z,,Doohickey,ea,none,false,false,0\n"
    "LOT,,Yoghurt,ea,lot,true,false,0\n";
constexpr const char* kBins = "code,zone,walk_order\nA1,A,1\nB1,B,2\nC1,C,3\n";

using Code = absl::StatusCode;
constexpr int64_t kDayMicros = 86'400'000'000LL;

struct Fixture : testing::LedgerFixture {
  RequestContext supervisor{"sam", "test"};

  Fixture() : LedgerFixture("depot-counts-", kSkus, kBins, "carl") {}

  void Ok(const absl::StatusOr<v1::OperationResult>& r) {
    INFO(r.status().ToString());
    REQUIRE(r.ok());
  }
  void Receive(const std::string& sku, const std::string& bin, int64_t q,
               const std::string& lot = "", const std::string& expiry = "") {
    Ok(LedgerFixture::Receive(sku, bin, q, lot, expiry));
  }
  void Move(const std::string& sku, const std::string& from, const std::string& to, int64_t q) {
    v1::Operation op;
    auto* m = op.mutable_move();
    m->set_sku(sku);
    m->set_from_bin(from);
    m->set_to_bin(to);
    m->set_quantity(q);
    Ok(ledger->Apply(ctx, op));
  }
  void Scrap(const std::string& sku, const std::string& bin, int64_t q) {
    v1::Operation op;
    op.mutable_scrap()->set_sku(sku);
    op.mutable_scrap()->set_bin(bin);
    op.mutable_scrap()->set_quantity(q);
    Ok(ledger->Apply(ctx, op));
  }
  void Adjust(const std::string& sku, const std::string& bin, int64_t q) {
    v1::Operation op;
    op.mutable_adjust()->set_sku(sku);
    op.mutable_adjust()->set_bin(bin);
    op.mutable_adjust()->set_quantity(q);
    op.mutable_adjust()->set_reason(q < 0 ? "damaged" : "found");
    Ok(ledger->Apply(ctx, op));
  }
  void ReserveAndConsume(const std::string& sku, int64_t q, const std::string& ref) {
    v1::Operation res;
    res.mutable_reserve()->set_sku(sku);
    res.mutable_reserve()->set_reference(ref);
    res.mutable_reserve()->set_quantity(q);
    Ok(ledger->Apply(ctx, res));
    v1::Operation con;
    con.mutable_consume()->set_sku(sku);
    con.mutable_consume()->set_reference(ref);
    con.mutable_consume()->set_quantity(q);
    Ok(ledger->Apply(ctx, con));
  }
  int64_t OnHand(const std::string& sku, const std::string& bin, const std::string& lot = "") {
    auto s = ledger->GetStock(sku, "");
    REQUIRE(s.ok());
    for (const auto& b : s->balances()) {
      if (b.bin() == bin && b.lot() == lot) return b.on_hand();
    }
    return 0;
  }

  absl::StatusOr<v1::OperationResult> Create(const std::string& sku, const std::string& bin,
                                             bool start = true, int64_t units = -1,
                                             int64_t percent = -1) {
    v1::Operation op;
    auto* c = op.mutable_count_create();
    c->set_sku(sku);
    c->set_bin(bin);
    c->set_start(start);
    if (units >= 0) c->set_tolerance_units(units);
    if (percent >= 0) c->set_tolerance_percent(percent);
    return ledger->Apply(ctx, op);
  }
  v1::CountTask MustCreate(const std::string& sku, const std::string& bin, bool start = true,
                           int64_t units = -1, int64_t percent = -1) {
    auto r = Create(sku, bin, start, units, percent);
    Ok(r);
    return r->count();
  }
  absl::StatusOr<v1::OperationResult> Start(const std::string& id) {
    v1::Operation op;
    op.mutable_count_start()->set_count_id(id);
    return ledger->Apply(ctx, op);
  }
  // lines: (line_no, counted)
  absl::StatusOr<v1::OperationResult> Submit(const std::string& id,
                                             std::vector<std::pair<uint32_t, int64_t>> lines,
                                             const RequestContext* who = nullptr) {
    v1::Operation op;
    op.mutable_count_submit()->set_count_id(id);
    for (auto [no, counted] : lines) {
      auto* l = op.mutable_count_submit()->add_lines();
      l->set_line_no(no);
      l->set_counted(counted);
    }
    return ledger->Apply(who ? *who : ctx, op);
  }
  absl::StatusOr<v1::OperationResult> Review(const std::string& id, bool approve,
                                             const RequestContext& who,
                                             std::vector<uint32_t> lines = {}) {
    v1::Operation op;
    op.mutable_count_review()->set_count_id(id);
    op.mutable_count_review()->set_approve(approve);
    for (auto n : lines) op.mutable_count_review()->add_line_nos(n);
    return ledger->Apply(who, op);
  }
  absl::StatusOr<v1::OperationResult> Generate(v1::GenerateCountsRequest r) {
    v1::Operation op;
    *op.mutable_count_generate() = r;
    return ledger->Apply(supervisor, op);
  }

  // Net change of on hand at (sku, bin, lot) by the movements after seq `after`, without the
  // count's own adjustment (reference = count id, reason count).
  int64_t NetAfter(const std::string& sku, const std::string& bin, uint64_t after,
                   const std::string& count_id, const std::string& lot = "") {
    node::MovementFilter f;
    f.sku = sku;
    f.after_seq = after;
    f.limit = 1000;
    auto ms = ledger->ListMovements(f);
    REQUIRE(ms.ok());
    int64_t net = 0;
    for (const auto& m : ms->movements()) {
      if (m.lot() != lot) continue;
      if (m.reason() == "count" && m.reference() == count_id) continue;
      const MovementEffects e = EffectsOf(m);
      for (int i = 0; i < e.stock_count; ++i) {
        if (e.stock[i].bin == bin) net += e.stock[i].delta;
      }
    }
    return net;
  }

  // Everything a refused request must leave untouched.
  struct Snapshot {
    uint64_t last_seq, last_event;
    std::string counts;
    bool operator==(const Snapshot&) const = default;
  };
  Snapshot Snap() {
    auto list = ledger->ListCounts(v1::COUNT_STATUS_UNSPECIFIED, 10000);
    REQUIRE(list.ok());
    return {ledger->LastSeq(), ledger->LastEventSeq(), list->SerializeAsString()};
  }
  void Refused(const absl::StatusOr<v1::OperationResult>& r, Code code, const Snapshot& before,
               const std::string& fragment = "") {
    INFO(r.status().ToString());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == code);
    if (!fragment.empty()) CHECK_THAT(std::string(r.status().message()),
                                      Catch::Matchers::Contains(fragment));
    CHECK(Snap() == before);
  }
  std::vector<v1::CountResult> CountEvents() {
    auto events = ledger->ReadOutbox(0, 100000);
    REQUIRE(events.ok());
    std::vector<v1::CountResult> out;
    for (const auto& e : *events) {
      if (e.has_count()) out.push_back(e.count());
    }
    return out;
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "count invariant 6: movements between start, submit and approval apply",
                 "[counts]") {
  Receive("W", "A1", 10);
  Receive("W", "B1", 4);
  Receive("X", "A1", 6);
  const v1::CountTask task = MustCreate("", "A1");
  REQUIRE(task.lines_size() == 2);  // (W, A1) and (X, A1)
  const uint64_t start = task.lines(0).start_seq();
  CHECK(start == ledger->LastSeq());
  CHECK(task.lines(0).started());
  CHECK(task.status() == v1::COUNT_OPEN);
  CHECK(task.origin() == "manual");
  const uint32_t w_line = task.lines(0).sku() == "W" ? task.lines(0).line_no()
                                                     : task.lines(1).line_no();
  const uint32_t x_line = w_line == 1 ? 2 : 1;

  // The floor keeps working while the counter counts: 10 were in A1 at the start, the counter
  // finds 7 of them (3 lost); meanwhile goods arrive, move, are scrapped and found.
  Receive("W", "A1", 5);
  Move("W", "A1", "B1", 3);
  Scrap("W", "A1", 1);
  Adjust("W", "A1", 2);
  Move("W", "B1", "A1", 1);
  REQUIRE(OnHand("W", "A1") == 14);

  auto submitted = Submit(task.count_id(), {{w_line, 7}, {x_line, 6}});
  Ok(submitted);
  const v1::CountTask& s = submitted->count();
  const v1::CountLine& wl = s.lines(w_line - 1);
  CHECK(wl.expected() == 10);  // on hand at the start seq, not now
  CHECK(wl.variance() == -3);
  CHECK_FALSE(wl.within_tolerance());  // 3 > 2 units and 30% > 5%
  CHECK(wl.status() == v1::COUNT_LINE_PENDING_APPROVAL);
  CHECK(wl.counted_by() == "carl");
  CHECK(s.lines(x_line - 1).status() == v1::COUNT_LINE_POSTED);  // exact: posts at once
  CHECK(s.lines(x_line - 1).adjustment_seq() == 0);               // nothing to adjust
  CHECK(s.status() == v1::COUNT_PENDING_APPROVAL);
  CHECK(submitted->movements_size() == 0);
  CHECK(OnHand("W", "A1") == 14);  // nothing posted yet

  // More movements before the supervisor approves: they count too.
  Receive("W", "A1", 2);
  auto approved = Review(task.count_id(), true, supervisor);
  Ok(approved);
  REQUIRE(approved->movements_size() == 1);
  const v1::Movement& adj = approved->movements(0);
  CHECK(adj.type() == v1::ADJUSTMENT);
  CHECK(adj.reason() == "count");
  CHECK(adj.quantity() == -3);
  CHECK(adj.reference() == task.count_id());
  CHECK(adj.operator_id() == "sam");
  const v1::CountLine& posted = approved->count().lines(w_line - 1);
  CHECK(posted.status() == v1::COUNT_LINE_POSTED);
  CHECK(posted.reviewed_by() == "sam");
  CHECK(posted.adjustment_seq() == adj.seq());
  CHECK(approved->count().status() == v1::COUNT_DONE);

  // Invariant 6: on hand after the adjustment = counted + net movements after the count's seq.
  const int64_t net = NetAfter("W", "A1", start, task.count_id());
  CHECK(net == 5 - 3 - 1 + 2 + 1 + 2);
  CHECK(OnHand("W", "A1") == 7 + net);
  CHECK(OnHand("X", "A1") == 6 + NetAfter("X", "A1", start, task.count_id()));
  CHECK(OnHand("W", "B1") == 4 + 3 - 1);  // other bins untouched by the count

  // One CountResult event per posted line, after the movement event of the adjustment.
  auto results = CountEvents();
  REQUIRE(results.size() == 2);
  CHECK(results[1].sku() == "W");
  CHECK(results[1].variance() == -3);
  CHECK(results[1].expected() == 10);
  CHECK(results[1].approved_by() == "sam");
  CHECK(results[1].counted_by() == "carl");
  CHECK_FALSE(results[1].within_tolerance());
  CHECK(results[1].start_seq() == start);
  CHECK(results[0].within_tolerance());
  RequireVerified();
  // The posted count survives a restart.
  Reopen();
  auto again = ledger->GetCount(task.count_id());
  REQUIRE(again.ok());
  CHECK(again->status() == v1::COUNT_DONE);
}

TEST_CASE_METHOD(Fixture, "count invariant 6 holds for random interleavings", "[counts]") {
  uint32_t rng = 12345;
  auto next = [&](uint32_t n) {
    rng = rng * 1103515245u + 12345u;
    return (rng >> 16) % n;
  };
  for (int round = 0; round < 20; ++round) {
    Receive("W", "A1", 20);
    Receive("W", "B1", 20);
    auto task = MustCreate("W", "A1", true, /*units=*/1000, /*percent=*/0);
    const uint64_t start = task.lines(0).start_seq();
    const int64_t at_start = OnHand("W", "A1");
    for (uint32_t i = 0, n = next(6); i < n; ++i) {
      switch (next(4)) {
        case 0: Receive("W", "A1", 1 + next(5)); break;
        case 1: Move("W", "B1", "A1", 1 + next(3)); break;
        case 2: Move("W", "A1", "B1", 1 + next(3)); break;
        default: Scrap("W", "A1", 1); break;
      }
    }
    const int64_t counted = std::max<int64_t>(0, at_start - 4 + static_cast<int64_t>(next(9)));
    auto r = Submit(task.count_id(), {{1, counted}});
    Ok(r);
    CHECK(r->count().lines(0).expected() == at_start);
    CHECK(r->count().status() == v1::COUNT_DONE);
    INFO("round " << round);
    CHECK(OnHand("W", "A1") == counted + NetAfter("W", "A1", start, task.count_id()));
  }
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "counts within tolerance post at once and the counter's view is blind",
                 "[counts]") {
  Receive("W", "A1", 50);
  Receive("W", "B1", 10);
  auto task = MustCreate("W", "", /*start=*/false);
  REQUIRE(task.lines_size() == 2);
  CHECK_FALSE(task.lines(0).started());
  CHECK(task.sku() == "W");
  CHECK(task.tolerance_units() == 2);   // the node's defaults
  CHECK(task.tolerance_percent() == 5);

  v1::CountTask blind = task;
  node::counts::Blind(&blind);
  CHECK(blind.blind());

  // Submitting before starting is refused.
  const Snapshot unstarted = Snap();
  Refused(Submit(task.count_id(), {{1, 48}}), Code::kFailedPrecondition, unstarted, "start");
  auto started = Start(task.count_id());
  Ok(started);
  CHECK(started->count().lines(0).started());

  // A1: 48 of 50 (2 units: within); B1: 9 of 10 (1 unit: within).
  auto r = Submit(task.count_id(), {{1, 48}, {2, 9}});
  Ok(r);
  CHECK(r->count().status() == v1::COUNT_DONE);
  REQUIRE(r->movements_size() == 2);
  CHECK(r->movements(0).quantity() == -2);
  CHECK(r->movements(1).quantity() == -1);
  CHECK(OnHand("W", "A1") == 48);
  CHECK(OnHand("W", "B1") == 9);
  CHECK(ledger->GetAtp("W")->on_hand() == 57);

  v1::CountTask seen = r->count();
  node::counts::Blind(&seen);
  for (const auto& l : seen.lines()) {
    CHECK_FALSE(l.has_expected());
    CHECK_FALSE(l.has_variance());
    CHECK_FALSE(l.has_within_tolerance());
    CHECK(l.counted() > 0);
  }
  CHECK(r->count().lines(0).has_expected());  // the full view has them
  // Per-task tolerance: 0 units and 0% means every variance waits for approval.
  Receive("X", "C1", 100);
  auto strict = MustCreate("X", "C1", true, 0, 0);
  CHECK(strict.tolerance_units() == 0);
  auto sr = Submit(strict.count_id(), {{1, 99}});
  Ok(sr);
  CHECK(sr->count().lines(0).status() == v1::COUNT_LINE_PENDING_APPROVAL);
  // ... and a generous percentage lets 10 of 100 through.
  Receive("Y", "C1", 100);
  auto loose = MustCreate("Y", "C1", true, 0, 10);
  auto lr = Submit(loose.count_id(), {{1, 110}});
  Ok(lr);
  CHECK(lr->count().lines(0).status() == v1::COUNT_LINE_POSTED);
  CHECK(OnHand("Y", "C1") == 110);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "a rejected line is recounted blind from a new start", "[counts]") {
  Receive("W", "A1", 20);
  auto task = MustCreate("W", "A1");
  Ok(Submit(task.count_id(), {{1, 12}}));
  const auto before = Snap();
  // The counter may not review their own count (four eyes).
  Refused(Review(task.count_id(), true, ctx), Code::kPermissionDenied, before, "carl");
  Refused(Review(task.count_id(), false, ctx), Code::kPermissionDenied, before);
  auto rejected = Review(task.count_id(), false, supervisor);
  Ok(rejected);
  CHECK(rejected->movements_size() == 0);
  const auto& l = rejected->count().lines(0);
  CHECK(l.status() == v1::COUNT_LINE_OPEN);
  CHECK_FALSE(l.started());
  CHECK(l.recounts() == 1);
  CHECK(l.reviewed_by() == "sam");
  CHECK(rejected->count().status() == v1::COUNT_OPEN);
  CHECK(OnHand("W", "A1") == 20);
  CHECK(CountEvents().empty());
  // Nothing waits any more.
  const Snapshot after_reject = Snap();
  Refused(Review(task.count_id(), true, supervisor), Code::kFailedPrecondition, after_reject,
          "waits for approval");
  // Recount: not before it is started again; movements before the new start are in expected.
  Refused(Submit(task.count_id(), {{1, 19}}), Code::kFailedPrecondition, after_reject);
  Receive("W", "A1", 5);
  Ok(Start(task.count_id()));
  Receive("W", "A1", 1);
  auto r = Submit(task.count_id(), {{1, 24}});
  Ok(r);
  CHECK(r->count().lines(0).expected() == 25);
  CHECK(r->count().status() == v1::COUNT_DONE);
  CHECK(OnHand("W", "A1") == 25);  // 24 counted + 1 received after the start
  auto kpi = ledger->CountKpi(0);
  REQUIRE(kpi.ok());
  CHECK(kpi->lines() == 1);  // the rejected submission is not a result
  CHECK(kpi->within_tolerance() == 1);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "bad count requests are refused and change nothing", "[counts]") {
  Receive("W", "A1", 10);
  Receive("X", "A1", 3);
  Receive("LOT", "B1", 4, "L1", "2030-01-01");
  auto task = MustCreate("", "A1");
  const Snapshot s = Snap();

  // A count already open on the bin, on a SKU in it, or on the same location.
  Refused(Create("", "A1"), Code::kFailedPrecondition, s, task.count_id());
  Refused(Create("W", ""), Code::kFailedPrecondition, s, task.count_id());
  Refused(Create("X", "A1"), Code::kFailedPrecondition, s, task.count_id());
  // Bad scopes.
  Refused(Create("", ""), Code::kInvalidArgument, s);
  Refused(Create("NOPE", ""), Code::kNotFound, s);
  Refused(Create("", "NOPE"), Code::kNotFound, s);
  Refused(Create("", "STAGING"), Code::kFailedPrecondition, s);
  Refused(Create("", "C1"), Code::kFailedPrecondition, s, "nothing to count");
  Refused(Create("LOT", "C1"), Code::kFailedPrecondition, s, "nothing to count");
  // An empty location may be counted when both SKU and bin are named (one line, lot "").
  auto empty = MustCreate("W", "B1");
  REQUIRE(empty.lines_size() == 1);
  CHECK(empty.lines(0).bin() == "B1");
  {
    const Snapshot before = Snap();
    v1::Operation op;
    op.mutable_count_create()->set_sku("Y");
    op.mutable_count_create()->set_bin("C1");
    op.mutable_count_create()->set_tolerance_units(-1);
    Refused(ledger->Apply(ctx, op), Code::kInvalidArgument, before);
  }
  const Snapshot s2 = Snap();  // (the W/B1 empty-location count above was created)
  // Unknown task.
  Refused(Submit("n1-C999", {{1, 5}}), Code::kNotFound, s2);
  Refused(Start("n1-C999"), Code::kNotFound, s2);
  Refused(Review("n1-C999", true, supervisor), Code::kNotFound, s2);
  // Lines not in the task, negative, twice, none.
  Refused(Submit(task.count_id(), {{9, 5}}), Code::kInvalidArgument, s2, "not in count");
  Refused(Submit(task.count_id(), {{1, -1}}), Code::kInvalidArgument, s2, "negative");
  Refused(Submit(task.count_id(), {{1, 10}, {1, 10}}), Code::kInvalidArgument, s2, "twice");
  Refused(Submit(task.count_id(), {}), Code::kInvalidArgument, s2);
  // A valid line together with a bad one: the whole submission is refused.
  Refused(Submit(task.count_id(), {{1, 10}, {7, 1}}), Code::kInvalidArgument, s2);
  {
    v1::Operation op;
    auto* l = op.mutable_count_submit();
    l->set_count_id(task.count_id());
    auto* line = l->add_lines();
    line->set_sku("W");
    line->set_bin("B1");
    line->set_counted(1);
    Refused(ledger->Apply(ctx, op), Code::kInvalidArgument, s2, "not in count");
  }
  // Approving lines not pending.
  Refused(Review(task.count_id(), true, supervisor, {1}), Code::kFailedPrecondition, s2);
  Refused(Review(task.count_id(), true, supervisor, {42}), Code::kInvalidArgument, s2);

  // Post it; then a second submission is refused.
  Ok(Submit(task.count_id(), {{1, 10}, {2, 3}}));
  const Snapshot s3 = Snap();
  Refused(Submit(task.count_id(), {{1, 9}}), Code::kFailedPrecondition, s3, "already posted");
  Refused(Start(task.count_id()), Code::kFailedPrecondition, s3);
  // Once done, the bin may be counted again.
  Ok(Create("", "A1"));
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "a count that would take a balance below zero is refused whole",
                 "[counts]") {
  Receive("W", "A1", 5);
  auto task = MustCreate("W", "A1", true, 100, 0);
  Move("W", "A1", "B1", 5);  // everything left after the start
  // Counted 0 at the start: adjustment -5 on a bin holding 0 now: refused, nothing changes.
  const Snapshot s = Snap();
  Refused(Submit(task.count_id(), {{1, 0}}), Code::kFailedPrecondition, s, "adjustment");
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "count requests are idempotent by request_id", "[counts]") {
  Receive("W", "A1", 5);
  v1::Operation op;
  op.mutable_count_create()->set_sku("W");
  op.mutable_count_create()->set_start(true);
  op.mutable_count_create()->set_request_id("cc-1");
  auto a = ledger->Apply(ctx, op);
  Ok(a);
  auto b = ledger->Apply(ctx, op);
  Ok(b);
  CHECK(b->replayed());
  CHECK(b->count().count_id() == a->count().count_id());
  auto list = ledger->ListCounts(v1::COUNT_STATUS_UNSPECIFIED, 100);
  REQUIRE(list.ok());
  CHECK(list->counts_size() == 1);
}

TEST_CASE("count tolerance and ABC classification rules", "[counts]") {
  CHECK(node::counts::WithinTolerance(0, 0, 0, 0));
  CHECK(node::counts::WithinTolerance(2, 10, 2, 0));
  CHECK_FALSE(node::counts::WithinTolerance(3, 10, 2, 0));
  CHECK(node::counts::WithinTolerance(-5, 100, 0, 5));
  CHECK_FALSE(node::counts::WithinTolerance(-6, 100, 0, 5));
  CHECK_FALSE(node::counts::WithinTolerance(1, 0, 0, 50));  // found stock where none was expected

  auto c = node::counts::ClassifyAbc({{"W", 80}, {"X", 15}, {"Y", 5}, {"Z", 0}}, 80, 15);
  CHECK(c["W"] == 'A');
  CHECK(c["X"] == 'B');
  CHECK(c["Y"] == 'C');
  CHECK(c["Z"] == 'C');
  auto even = node::counts::ClassifyAbc({{"P", 10}, {"Q", 10}, {"R", 10}, {"S", 10}, {"T", 10}}, 80, 15);
  int a = 0, b = 0;
  for (auto& [sku, cls] : even) {
    if (cls == 'A') ++a;
    if (cls == 'B') ++b;
  }
  CHECK(a == 4);  // volume before them 0, 10, 20, 30 of 50: below 80%
  CHECK(b == 1);  // 40 of 50: below 95%
}

TEST_CASE_METHOD(Fixture, "the ABC rule creates tasks for SKUs not counted within their interval",
                 "[counts]") {
  for (const char* sku : {"W", "X", "Y", "Z"}) Receive(sku, "A1", 100);
  ReserveAndConsume("W", 80, "o-w");
  ReserveAndConsume("X", 15, "o-x");
  ReserveAndConsume("Y", 5, "o-y");

  v1::GenerateCountsRequest req;
  req.set_start(true);
  auto g = Generate(req);
  Ok(g);
  const auto& gen = g->count_generation();
  REQUIRE(gen.classes_size() == 4);
  CHECK(gen.classes(0).sku() == "W");
  CHECK(gen.classes(0).abc() == "A");
  CHECK(gen.classes(0).units_out() == 80);
  CHECK(gen.classes(1).abc() == "B");
  CHECK(gen.classes(2).abc() == "C");
  REQUIRE(gen.counts_size() == 4);  // never counted: all due
  CHECK(gen.counts(0).origin() == "abc:A");
  CHECK(gen.counts(0).sku() == "W");
  CHECK(gen.counts(0).bin().empty());
  CHECK(gen.counts(3).origin() == "abc:C");

  // Nothing new while they are open.
  auto again = Generate(req);
  Ok(again);
  CHECK(again->count_generation().counts_size() == 0);

  // Count everything exactly.
  for (const auto& t : gen.counts()) Ok(Submit(t.count_id(), {{1, OnHand(t.sku(), "A1")}}));
  CHECK(Generate(req)->count_generation().counts_size() == 0);

  // 8 days later only A is due (7 days); B (30) and C (90) are not.
  clock.Advance(8 * kDayMicros);
  auto week = Generate(req);
  Ok(week);
  REQUIRE(week->count_generation().counts_size() == 1);
  CHECK(week->count_generation().counts(0).sku() == "W");

  // 31 days after the first count, with a 60-day window (configurable) so the volume still
  // classifies: B is due; A has its task open; C is not due. A custom C interval of 20 days
  // makes C due as well.
  clock.Advance(23 * kDayMicros);
  v1::GenerateCountsRequest month = req;
  month.set_window_days(60);
  auto m = Generate(month);
  Ok(m);
  REQUIRE(m->count_generation().counts_size() == 1);
  CHECK(m->count_generation().counts(0).sku() == "X");
  v1::GenerateCountsRequest custom = month;
  custom.set_c_days(20);
  auto c = Generate(custom);
  Ok(c);
  CHECK(c->count_generation().counts_size() == 2);  // Y and Z

  v1::GenerateCountsRequest bad;
  bad.set_a_share_percent(90);
  bad.set_b_share_percent(20);
  const Snapshot before = Snap();
  Refused(Generate(bad), Code::kInvalidArgument, before);
}

TEST_CASE_METHOD(Fixture, "inventory accuracy KPI: share of posted lines within tolerance",
                 "[counts]") {
  auto kpi0 = ledger->CountKpi(0);
  REQUIRE(kpi0.ok());
  CHECK(kpi0->lines() == 0);
  CHECK(kpi0->accuracy() == 0);

  Receive("W", "A1", 100);
  Receive("X", "A1", 100);
  Receive("Y", "A1", 100);
  Receive("Z", "A1", 100);
  auto t = MustCreate("", "A1");  // 4 lines: W, X, Y, Z
  Ok(Submit(t.count_id(), {{1, 100}, {2, 99}, {3, 80}, {4, 120}}));
  auto mid = ledger->CountKpi(0);
  REQUIRE(mid.ok());
  CHECK(mid->lines() == 2);
  CHECK(mid->pending_approval() == 2);
  CHECK(mid->open_counts() == 1);
  Ok(Review(t.count_id(), true, supervisor, {3}));
  Ok(Review(t.count_id(), true, supervisor, {4}));
  auto kpi = ledger->CountKpi(0);
  REQUIRE(kpi.ok());
  CHECK(kpi->site() == "n1");
  CHECK(kpi->lines() == 4);
  CHECK(kpi->within_tolerance() == 2);
  CHECK(kpi->accuracy() == Approx(0.5));
  CHECK(kpi->abs_variance() == 0 + 1 + 20 + 20);
  CHECK(kpi->net_variance() == -1 - 20 + 20);
  CHECK(kpi->open_counts() == 0);
  CHECK(kpi->pending_approval() == 0);
  // A period: 10 days later the last 7 days hold no posted line.
  clock.Advance(10 * kDayMicros);
  CHECK(ledger->CountKpi(7)->lines() == 0);
  CHECK(ledger->CountKpi(30)->lines() == 4);
}

TEST_CASE_METHOD(Fixture, "central keeps every site's count results: inventory accuracy per site",
                 "[counts][central]") {
  // Site S1's results come from a real node ledger's outbox; S2's are written by hand.
  Receive("W", "A1", 10);
  Receive("X", "A1", 10);
  auto t = MustCreate("", "A1");
  Ok(Submit(t.count_id(), {{1, 10}, {2, 4}}));
  Ok(Review(t.count_id(), true, supervisor));
  auto outbox = ledger->ReadOutbox(0, 100000);
  REQUIRE(outbox.ok());
  std::vector<v1::Event> events;
  for (const auto& e : *outbox) {
    if (e.has_count() || e.has_movement()) events.push_back(e);
  }

  testing::CentralWorld world;
  world.Apply("S1", events);
  v1::Event e;
  auto* c = e.mutable_count();
  c->set_count_id("S2-C1");
  c->set_line_no(1);
  c->set_sku("A");
  c->set_bin("B1");
  c->set_counted(5);
  c->set_expected(5);
  c->set_within_tolerance(true);
  c->set_posted_hlc(world.Hlc());
  world.Apply("S2", e);

  auto acc = world.store->InventoryAccuracy("", 0, 0);
  INFO(acc.status().ToString());
  REQUIRE(acc.ok());
  REQUIRE(acc->sites_size() == 2);
  CHECK(acc->sites(0).site() == "S1");
  CHECK(acc->sites(0).lines() == 2);
  CHECK(acc->sites(0).within_tolerance() == 1);
  CHECK(acc->sites(0).accuracy() == Approx(0.5));
  CHECK(acc->sites(0).net_variance() == -6);
  CHECK(acc->sites(1).site() == "S2");
  CHECK(acc->sites(1).accuracy() == Approx(1.0));
  CHECK(acc->total().lines() == 3);
  CHECK(acc->total().within_tolerance() == 2);
  // The mirror took the count adjustment like any adjustment.
  auto mirror = world.store->Mirror("S1");
  REQUIRE(mirror.ok());
  CHECK(mirror->on_hand[{"X", ""}] == 4);

  auto only = world.store->InventoryAccuracy("S2", 0, 0);
  REQUIRE(only.ok());
  REQUIRE(only->sites_size() == 1);
  CHECK(only->sites(0).site() == "S2");
  const int64_t later = static_cast<int64_t>(world.Hlc() >> 16) + 1;
  CHECK(world.store->InventoryAccuracy("", later, 0)->total().lines() == 0);

  // A restore of S1 that lost its last event (the approved line's result) forgets it.
  REQUIRE(world.store->BeginEpoch("S1", 8, events.size() - 1).ok());
  auto after = world.store->InventoryAccuracy("S1", 0, 0);
  REQUIRE(after.ok());
  REQUIRE(after->sites_size() == 1);
  CHECK(after->sites(0).lines() == 1);
}

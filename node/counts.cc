#include "node/counts.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <tuple>

#include <SQLiteCpp/Transaction.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/stock_rules.h"

namespace depot::node::counts {

const char* const kSchema = R"sql(
-- Cycle counts (node/counts.h). n orders tasks by creation; status is derived from the lines.
CREATE TABLE count_tasks(
  count_id TEXT PRIMARY KEY, n INTEGER NOT NULL UNIQUE, sku TEXT NOT NULL, bin TEXT NOT NULL,
  status INTEGER NOT NULL, origin TEXT NOT NULL, tolerance_units INTEGER NOT NULL,
  tolerance_percent INTEGER NOT NULL, created_by TEXT NOT NULL, created_hlc INTEGER NOT NULL,
  hlc INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX count_tasks_by_status ON count_tasks(status, n);
-- One (sku, bin, lot) of a task. start_seq is the ledger's last movement seq when counting
-- started (started = 1); expected/variance are filled when counted.
CREATE TABLE count_lines(
  count_id TEXT NOT NULL, line_no INTEGER NOT NULL, sku TEXT NOT NULL, bin TEXT NOT NULL,
  lot TEXT NOT NULL, status INTEGER NOT NULL, started INTEGER NOT NULL,
  start_seq INTEGER NOT NULL, counted INTEGER NOT NULL, expected INTEGER NOT NULL,
  variance INTEGER NOT NULL, within_tolerance INTEGER NOT NULL, counted_by TEXT NOT NULL,
  submitted_hlc INTEGER NOT NULL, reviewed_by TEXT NOT NULL, posted_hlc INTEGER NOT NULL,
  adjustment_seq INTEGER NOT NULL, recounts INTEGER NOT NULL, serials TEXT NOT NULL,
  PRIMARY KEY(count_id, line_no)) WITHOUT ROWID;
CREATE INDEX count_lines_by_location ON count_lines(sku, bin, lot, status);
CREATE INDEX count_lines_by_status ON count_lines(status, posted_hlc);
)sql";

namespace {

using absl::StrCat;

constexpr int64_t kDayMs = 86400000;

absl::Status NotFound(const std::string& id) {
  return absl::NotFoundError(StrCat("unknown count '", id, "'"));
}

std::string LineName(const v1::CountLine& l) {
  return StrCat("line ", l.line_no(), " (", l.sku(), " in ", l.bin(),
                l.lot().empty() ? "" : StrCat(" lot ", l.lot()), ")");
}

constexpr const char* kLineColumns =
    "line_no, sku, bin, lot, status, started, start_seq, counted, expected, variance, "
    "within_tolerance, counted_by, submitted_hlc, reviewed_by, posted_hlc, adjustment_seq, "
    "recounts, serials";

void ReadLine(SQLite::Statement& q, v1::CountLine* l) {
  l->set_line_no(static_cast<uint32_t>(q.getColumn(0).getInt()));
  l->set_sku(q.getColumn(1).getString());
  l->set_bin(q.getColumn(2).getString());
  l->set_lot(q.getColumn(3).getString());
  l->set_status(static_cast<v1::CountLineStatus>(q.getColumn(4).getInt()));
  l->set_started(q.getColumn(5).getInt() != 0);
  l->set_start_seq(q.getColumn(6).getInt64());
  l->set_counted(q.getColumn(7).getInt64());
  if (l->status() != v1::COUNT_LINE_OPEN) {  // counted: the verdict exists
    l->set_expected(q.getColumn(8).getInt64());
    l->set_variance(q.getColumn(9).getInt64());
    l->set_within_tolerance(q.getColumn(10).getInt() != 0);
  }
  l->set_counted_by(q.getColumn(11).getString());
  l->set_submitted_hlc(q.getColumn(12).getInt64());
  l->set_reviewed_by(q.getColumn(13).getString());
  l->set_posted_hlc(q.getColumn(14).getInt64());
  l->set_adjustment_seq(q.getColumn(15).getInt64());
  l->set_recounts(static_cast<uint32_t>(q.getColumn(16).getInt()));
  const std::string serials = q.getColumn(17).getString();
  if (!serials.empty()) {
    for (auto s : absl::StrSplit(serials, '\n')) l->add_serials(std::string(s));
  }
}

constexpr const char* kTaskColumns =
    "count_id, sku, bin, status, origin, tolerance_units, tolerance_percent, created_by, "
    "created_hlc";

void ReadHeader(SQLite::Statement& q, v1::CountTask* t) {
  t->set_count_id(q.getColumn(0).getString());
  t->set_sku(q.getColumn(1).getString());
  t->set_bin(q.getColumn(2).getString());
  t->set_status(static_cast<v1::CountStatus>(q.getColumn(3).getInt()));
  t->set_origin(q.getColumn(4).getString());
  t->set_tolerance_units(q.getColumn(5).getInt64());
  t->set_tolerance_percent(q.getColumn(6).getInt64());
  t->set_created_by(q.getColumn(7).getString());
  t->set_created_hlc(q.getColumn(8).getInt64());
}

void ReadLines(StmtCache& db, v1::CountTask* t) {
  auto q = db.Get(
      "SELECT line_no, sku, bin, lot, status, started, start_seq, counted, expected, variance, "
      "within_tolerance, counted_by, submitted_hlc, reviewed_by, posted_hlc, adjustment_seq, "
      "recounts, serials FROM count_lines WHERE count_id = ? ORDER BY line_no");
  q->bind(1, t->count_id());
  while (q->executeStep()) ReadLine(*q, t->add_lines());
}

absl::StatusOr<v1::CountTask> ReadTask(StmtCache& db, const std::string& id) {
  v1::CountTask t;
  {
    auto q = db.Get(
        "SELECT count_id, sku, bin, status, origin, tolerance_units, tolerance_percent, "
        "created_by, created_hlc FROM count_tasks WHERE count_id = ?");
    q->bind(1, id);
    if (!q->executeStep()) return NotFound(id);
    ReadHeader(*q, &t);
  }
  ReadLines(db, &t);
  return t;
}

v1::CountStatus DeriveStatus(const v1::CountTask& t) {
  bool pending = false;
  for (const auto& l : t.lines()) {
    if (l.status() == v1::COUNT_LINE_OPEN) return v1::COUNT_OPEN;
    if (l.status() == v1::COUNT_LINE_PENDING_APPROVAL) pending = true;
  }
  return pending ? v1::COUNT_PENDING_APPROVAL : v1::COUNT_DONE;
}

void SaveLine(LedgerTx& tx, const std::string& count_id, const v1::CountLine& l) {
  auto up = tx.stmts().Get(
      "UPDATE count_lines SET status = ?, started = ?, start_seq = ?, counted = ?, expected = ?, "
      "variance = ?, within_tolerance = ?, counted_by = ?, submitted_hlc = ?, reviewed_by = ?, "
      "posted_hlc = ?, adjustment_seq = ?, recounts = ?, serials = ? "
      "WHERE count_id = ? AND line_no = ?");
  up->bind(1, static_cast<int>(l.status()));
  up->bind(2, l.started() ? 1 : 0);
  up->bind(3, static_cast<int64_t>(l.start_seq()));
  up->bind(4, l.counted());
  up->bind(5, l.expected());
  up->bind(6, l.variance());
  up->bind(7, l.within_tolerance() ? 1 : 0);
  up->bind(8, l.counted_by());
  up->bind(9, static_cast<int64_t>(l.submitted_hlc()));
  up->bind(10, l.reviewed_by());
  up->bind(11, static_cast<int64_t>(l.posted_hlc()));
  up->bind(12, static_cast<int64_t>(l.adjustment_seq()));
  up->bind(13, static_cast<int64_t>(l.recounts()));
  up->bind(14, absl::StrJoin(l.serials(), "\n"));
  up->bind(15, count_id);
  up->bind(16, static_cast<int64_t>(l.line_no()));
  up->exec();
}

// Derives the task's status from its lines and stores it with the change's clock.
void SaveStatus(LedgerTx& tx, v1::CountTask* t, uint64_t hlc) {
  t->set_status(DeriveStatus(*t));
  auto up = tx.stmts().Get("UPDATE count_tasks SET status = ?, hlc = ? WHERE count_id = ?");
  up->bind(1, static_cast<int>(t->status()));
  up->bind(2, static_cast<int64_t>(hlc));
  up->bind(3, t->count_id());
  up->exec();
}

uint64_t LastSeq(LedgerTx& tx) {
  auto q = tx.stmts().Get("SELECT COALESCE(MAX(seq), 0) FROM movements");
  return q->executeStep() ? static_cast<uint64_t>(q->getColumn(0).getInt64()) : 0;
}

// On hand of (sku, bin, lot) at ledger seq `at`: on hand now minus the net effect of every
// movement of the SKU after `at` on that location (common/stock_rules EffectsOf).
int64_t OnHandAt(LedgerTx& tx, const std::string& sku, const std::string& bin,
                 const std::string& lot, uint64_t at) {
  int64_t now = 0;
  {
    auto q = tx.stmts().Get("SELECT on_hand FROM balances WHERE sku = ? AND bin = ? AND lot = ?");
    q->bind(1, sku);
    q->bind(2, bin);
    q->bind(3, lot);
    if (q->executeStep()) now = q->getColumn(0).getInt64();
  }
  int64_t after = 0;
  auto q = tx.stmts().Get(
      "SELECT type, bin, to_bin, quantity FROM movements WHERE sku = ? AND seq > ? AND lot = ?");
  q->bind(1, sku);
  q->bind(2, static_cast<int64_t>(at));
  q->bind(3, lot);
  while (q->executeStep()) {
    v1::Movement m;
    m.set_type(static_cast<v1::MovementType>(q->getColumn(0).getInt()));
    m.set_bin(q->getColumn(1).getString());
    m.set_to_bin(q->getColumn(2).getString());
    m.set_quantity(q->getColumn(3).getInt64());
    const MovementEffects e = EffectsOf(m);
    for (int i = 0; i < e.stock_count; ++i) {
      if (e.stock[i].bin == bin) after += e.stock[i].delta;
    }
  }
  return now - after;
}

// The unfinished count that already covers (sku, bin, lot), "" when none.
std::string OpenCountOn(LedgerTx& tx, const std::string& sku, const std::string& bin,
                        const std::string& lot) {
  auto q = tx.stmts().Get(
      "SELECT count_id FROM count_lines WHERE sku = ? AND bin = ? AND lot = ? AND status != ? "
      "LIMIT 1");
  q->bind(1, sku);
  q->bind(2, bin);
  q->bind(3, lot);
  q->bind(4, static_cast<int>(v1::COUNT_LINE_POSTED));
  return q->executeStep() ? q->getColumn(0).getString() : "";
}

// Ids: the node's local id prefix with C for count ("<node>-C<n>", after a restore from backup
// "<node>-<mark>-C<n>"), so a rewound counter never issues an id central already has.
std::string NewCountId(LedgerTx& tx, int64_t* n) {
  auto q = tx.stmts().Get("SELECT COALESCE(MAX(n), 0) + 1 FROM count_tasks");
  q->executeStep();
  *n = q->getColumn(0).getInt64();
  std::string prefix = tx.LocalIdPrefix();
  if (!prefix.empty() && prefix.back() == 'L') prefix.back() = 'C';
  return StrCat(prefix, *n);
}

absl::Status StartLines(LedgerTx& tx, v1::CountTask* t) {
  const uint64_t seq = LastSeq(tx);
  int started = 0;
  for (auto& l : *t->mutable_lines()) {
    if (l.status() != v1::COUNT_LINE_OPEN) continue;
    l.set_started(true);
    l.set_start_seq(seq);
    SaveLine(tx, t->count_id(), l);
    ++started;
  }
  if (started == 0) {
    return absl::FailedPreconditionError(
        StrCat("count '", t->count_id(), "' has no line to count (",
               t->status() == v1::COUNT_DONE ? "it is done" : "every line waits for approval",
               ")"));
  }
  return absl::OkStatus();
}

struct Scope {
  std::string sku, bin, origin;
  int64_t tolerance_units = 0, tolerance_percent = 0;
  bool start = false;
};

absl::StatusOr<v1::CountTask> Create(LedgerTx& tx, const Scope& scope) {
  if (scope.sku.empty() && scope.bin.empty()) {
    return absl::InvalidArgumentError("a count needs a sku, a bin or both");
  }
  if (auto s = CheckCode("sku", scope.sku, false); !s.ok()) return s;
  if (auto s = CheckCode("bin", scope.bin, false); !s.ok()) return s;
  if (scope.tolerance_units < 0 || scope.tolerance_percent < 0) {
    return absl::InvalidArgumentError("tolerances must not be negative");
  }
  v1::Sku sku;
  if (!scope.sku.empty()) {
    auto s = tx.Sku(scope.sku);
    if (!s.ok()) return s.status();
    sku = *s;
  }
  if (!scope.bin.empty()) {
    if (scope.bin == kStagingBin) {
      return absl::FailedPreconditionError(StrCat(
          "bin '", scope.bin, "' holds picked goods of open orders: it is not cycle-counted"));
    }
    auto q = tx.stmts().Get("SELECT 1 FROM bins WHERE code = ?");
    q->bind(1, scope.bin);
    if (!q->executeStep()) return absl::NotFoundError(StrCat("unknown bin '", scope.bin, "'"));
  }
  // Same scope already open?
  {
    auto q = tx.stmts().Get(
        "SELECT count_id FROM count_tasks WHERE sku = ? AND bin = ? AND status != ? LIMIT 1");
    q->bind(1, scope.sku);
    q->bind(2, scope.bin);
    q->bind(3, static_cast<int>(v1::COUNT_DONE));
    if (q->executeStep()) {
      return absl::FailedPreconditionError(
          StrCat("count '", q->getColumn(0).getString(), "' is already open on ",
                 scope.sku.empty() ? "" : StrCat("SKU '", scope.sku, "'"),
                 scope.sku.empty() || scope.bin.empty() ? "" : " in ",
                 scope.bin.empty() ? "" : StrCat("bin '", scope.bin, "'")));
    }
  }
  std::vector<std::tuple<std::string, std::string, std::string>> locations;
  {
    auto q = tx.stmts().Get(
        "SELECT sku, bin, lot FROM balances WHERE (?1 = '' OR sku = ?1) AND (?2 = '' OR bin = ?2) "
        "AND bin != ?3 ORDER BY bin, sku, lot");
    q->bind(1, scope.sku);
    q->bind(2, scope.bin);
    q->bind(3, kStagingBin);
    while (q->executeStep()) {
      locations.emplace_back(q->getColumn(0).getString(), q->getColumn(1).getString(),
                             q->getColumn(2).getString());
    }
  }
  if (locations.empty()) {
    const bool lot_required = sku.tracking() == v1::TRACKING_LOT || sku.expiry_tracked();
    if (scope.sku.empty() || scope.bin.empty() || lot_required) {
      return absl::FailedPreconditionError(StrCat(
          "nothing to count: no stock ",
          scope.sku.empty() ? "" : StrCat("of SKU '", scope.sku, "' "),
          scope.bin.empty() ? "" : StrCat("in bin '", scope.bin, "' "),
          "on record (name a SKU and a bin to count an empty location)"));
    }
    locations.emplace_back(scope.sku, scope.bin, "");
  }
  for (const auto& [s, b, lot] : locations) {
    const std::string open = OpenCountOn(tx, s, b, lot);
    if (!open.empty()) {
      return absl::FailedPreconditionError(
          StrCat("count '", open, "' is already open on SKU '", s, "' in bin '", b, "'",
                 lot.empty() ? "" : StrCat(" lot '", lot, "'"), ": finish it first"));
    }
  }

  int64_t n = 0;
  const std::string id = NewCountId(tx, &n);
  const uint64_t hlc = tx.Now();
  {
    auto ins = tx.stmts().Get(
        "INSERT INTO count_tasks(count_id, n, sku, bin, status, origin, tolerance_units, "
        "tolerance_percent, created_by, created_hlc, hlc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    ins->bind(1, id);
    ins->bind(2, n);
    ins->bind(3, scope.sku);
    ins->bind(4, scope.bin);
    ins->bind(5, static_cast<int>(v1::COUNT_OPEN));
    ins->bind(6, scope.origin);
    ins->bind(7, scope.tolerance_units);
    ins->bind(8, scope.tolerance_percent);
    ins->bind(9, tx.context().operator_id);
    ins->bind(10, static_cast<int64_t>(hlc));
    ins->bind(11, static_cast<int64_t>(hlc));
    ins->exec();
  }
  uint32_t line_no = 0;
  for (const auto& [s, b, lot] : locations) {
    auto ins = tx.stmts().Get(
        "INSERT INTO count_lines(count_id, line_no, sku, bin, lot, status, started, start_seq, "
        "counted, expected, variance, within_tolerance, counted_by, submitted_hlc, reviewed_by, "
        "posted_hlc, adjustment_seq, recounts, serials) "
        "VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, '', 0, '', 0, 0, 0, '')");
    ins->bind(1, id);
    ins->bind(2, static_cast<int64_t>(++line_no));
    ins->bind(3, s);
    ins->bind(4, b);
    ins->bind(5, lot);
    ins->bind(6, static_cast<int>(v1::COUNT_LINE_OPEN));
    ins->exec();
  }
  auto task = ReadTask(tx.stmts(), id);
  if (!task.ok()) return task.status();
  if (scope.start) {
    if (auto s = StartLines(tx, &*task); !s.ok()) return s;
  }
  return task;
}

// Posts a counted line: the adjustment counted - expected-at-start_seq as a normal "count"
// adjustment, the line's state, and a CountResult event.
absl::Status Post(LedgerTx& tx, const v1::CountTask& t, v1::CountLine* l,
                  const std::string& approver, v1::OperationResult* result) {
  // The same rule at approval as at submission: on hand at start_seq never changes (movements
  // are immutable), so movements between submit and approve still count.
  const int64_t expected = OnHandAt(tx, l->sku(), l->bin(), l->lot(), l->start_seq());
  l->set_expected(expected);
  l->set_variance(l->counted() - expected);
  l->set_within_tolerance(
      WithinTolerance(l->variance(), expected, t.tolerance_units(), t.tolerance_percent()));
  if (l->variance() != 0) {
    v1::Operation op;
    auto* a = op.mutable_adjust();
    a->set_sku(l->sku());
    a->set_bin(l->bin());
    a->set_lot(l->lot());
    a->set_quantity(l->variance());
    a->set_reason("count");
    a->set_reference(t.count_id());
    *a->mutable_serials() = l->serials();
    if (auto s = tx.Stock(op); !s.ok()) {
      return absl::Status(s.code(), StrCat(LineName(*l), ": adjustment ", l->variance(),
                                           " refused: ", s.message()));
    }
    l->set_adjustment_seq(result->movements(result->movements_size() - 1).seq());
    if (l->variance() < 0) tx.rights().Touch(l->sku(), -l->variance());  // a physical loss
  }
  const uint64_t hlc = tx.Now();
  l->set_status(v1::COUNT_LINE_POSTED);
  l->set_reviewed_by(approver);
  l->set_posted_hlc(hlc);
  SaveLine(tx, t.count_id(), *l);

  v1::Event e;
  e.set_hlc(hlc);
  v1::CountResult* c = e.mutable_count();
  c->set_count_id(t.count_id());
  c->set_line_no(l->line_no());
  c->set_sku(l->sku());
  c->set_bin(l->bin());
  c->set_lot(l->lot());
  c->set_counted(l->counted());
  c->set_expected(l->expected());
  c->set_variance(l->variance());
  c->set_within_tolerance(l->within_tolerance());
  c->set_start_seq(l->start_seq());
  c->set_counted_by(l->counted_by());
  c->set_approved_by(approver);
  c->set_adjustment_seq(l->adjustment_seq());
  c->set_posted_hlc(hlc);
  tx.Emit(std::move(e));
  return absl::OkStatus();
}

absl::StatusOr<v1::CountTask> Submit(LedgerTx& tx, const v1::SubmitCountRequest& r,
                                     v1::OperationResult* result) {
  auto t = ReadTask(tx.stmts(), r.count_id());
  if (!t.ok()) return t.status();
  if (t->status() == v1::COUNT_DONE) {
    return absl::FailedPreconditionError(
        StrCat("count '", r.count_id(), "' is already posted: create a new count"));
  }
  if (r.lines().empty()) return absl::InvalidArgumentError("no counted lines");
  std::vector<std::pair<int, const v1::CountedLine*>> todo;  // index into t->lines()
  std::set<int> seen;
  for (const auto& c : r.lines()) {
    int index = -1;
    for (int i = 0; i < t->lines_size(); ++i) {
      const auto& l = t->lines(i);
      if (c.line_no() != 0 ? l.line_no() == c.line_no()
                           : (l.sku() == c.sku() && l.bin() == c.bin() && l.lot() == c.lot())) {
        index = i;
        break;
      }
    }
    if (index < 0) {
      return absl::InvalidArgumentError(
          c.line_no() != 0
              ? StrCat("line ", c.line_no(), " is not in count '", r.count_id(), "'")
              : StrCat("SKU '", c.sku(), "' in bin '", c.bin(), "'",
                       c.lot().empty() ? "" : StrCat(" lot '", c.lot(), "'"),
                       " is not in count '", r.count_id(), "'"));
    }
    if (!seen.insert(index).second) {
      return absl::InvalidArgumentError(
          StrCat(LineName(t->lines(index)), " is named twice in one submission"));
    }
    if (c.counted() < 0) {
      return absl::InvalidArgumentError(
          StrCat(LineName(t->lines(index)), ": counted must not be negative"));
    }
    const auto& l = t->lines(index);
    if (l.status() != v1::COUNT_LINE_OPEN) {
      return absl::FailedPreconditionError(StrCat(
          LineName(l), " was already counted (",
          l.status() == v1::COUNT_LINE_POSTED ? "posted" : "waiting for approval", ")"));
    }
    if (!l.started()) {
      return absl::FailedPreconditionError(
          StrCat(LineName(l), ": start the count before submitting (POST /v1/counts/",
                 r.count_id(), "/start)"));
    }
    todo.emplace_back(index, &c);
  }
  const uint64_t hlc = tx.Now();
  for (auto [index, c] : todo) {
    v1::CountLine* l = t->mutable_lines(index);
    l->set_counted(c->counted());
    *l->mutable_serials() = c->serials();
    l->set_counted_by(tx.context().operator_id);
    l->set_submitted_hlc(hlc);
    l->set_expected(OnHandAt(tx, l->sku(), l->bin(), l->lot(), l->start_seq()));
    l->set_variance(l->counted() - l->expected());
    l->set_within_tolerance(WithinTolerance(l->variance(), l->expected(), t->tolerance_units(),
                                            t->tolerance_percent()));
    if (l->within_tolerance()) {
      if (auto s = Post(tx, *t, l, "", result); !s.ok()) return s;
    } else {
      l->set_status(v1::COUNT_LINE_PENDING_APPROVAL);
      SaveLine(tx, t->count_id(), *l);
    }
  }
  SaveStatus(tx, &*t, hlc);
  return t;
}

absl::StatusOr<v1::CountTask> Review(LedgerTx& tx, const v1::ReviewCountRequest& r,
                                     v1::OperationResult* result) {
  auto t = ReadTask(tx.stmts(), r.count_id());
  if (!t.ok()) return t.status();
  const std::string& who = tx.context().operator_id;
  const char* verb = r.approve() ? "approve" : "reject";
  std::vector<int> todo;
  if (r.line_nos().empty()) {
    for (int i = 0; i < t->lines_size(); ++i) {
      if (t->lines(i).status() == v1::COUNT_LINE_PENDING_APPROVAL) todo.push_back(i);
    }
    if (todo.empty()) {
      return absl::FailedPreconditionError(
          StrCat("no line of count '", r.count_id(), "' waits for approval"));
    }
  } else {
    std::set<uint32_t> seen;
    for (uint32_t no : r.line_nos()) {
      if (!seen.insert(no).second) {
        return absl::InvalidArgumentError(StrCat("line ", no, " is named twice"));
      }
      int index = -1;
      for (int i = 0; i < t->lines_size(); ++i) {
        if (t->lines(i).line_no() == no) index = i;
      }
      if (index < 0) {
        return absl::InvalidArgumentError(
            StrCat("line ", no, " is not in count '", r.count_id(), "'"));
      }
      if (t->lines(index).status() != v1::COUNT_LINE_PENDING_APPROVAL) {
        return absl::FailedPreconditionError(
            StrCat(LineName(t->lines(index)), " does not wait for approval"));
      }
      todo.push_back(index);
    }
  }
  for (int index : todo) {
    if (t->lines(index).counted_by() == who) {
      return absl::PermissionDeniedError(StrCat(
          "operator '", who, "' counted ", LineName(t->lines(index)),
          " and may not ", verb, " it: another supervisor must"));
    }
  }
  const uint64_t hlc = tx.Now();
  for (int index : todo) {
    v1::CountLine* l = t->mutable_lines(index);
    if (r.approve()) {
      if (auto s = Post(tx, *t, l, who, result); !s.ok()) return s;
    } else {  // recount: blind again, started again by the next start
      l->set_status(v1::COUNT_LINE_OPEN);
      l->set_started(false);
      l->set_start_seq(0);
      l->set_counted(0);
      l->clear_expected();
      l->clear_variance();
      l->clear_within_tolerance();
      l->set_reviewed_by(who);
      l->set_recounts(l->recounts() + 1);
      l->clear_serials();
      SaveLine(tx, t->count_id(), *l);
    }
  }
  SaveStatus(tx, &*t, hlc);
  return t;
}

absl::Status Generate(LedgerTx& tx, const CountTolerance& defaults,
                      const v1::GenerateCountsRequest& r, v1::GenerateCountsResult* out) {
  const uint32_t window = r.window_days() ? r.window_days() : 30;
  const uint32_t a_share = r.a_share_percent() ? r.a_share_percent() : 80;
  const uint32_t b_share = r.b_share_percent() ? r.b_share_percent() : 15;
  const uint32_t interval[3] = {r.a_days() ? r.a_days() : 7, r.b_days() ? r.b_days() : 30,
                                r.c_days() ? r.c_days() : 90};
  const uint32_t limit = r.limit() ? r.limit() : 1000;
  if (a_share + b_share > 100) {
    return absl::InvalidArgumentError("a_share_percent + b_share_percent must be at most 100");
  }
  if (window > 3650 || interval[0] > 3650 || interval[1] > 3650 || interval[2] > 3650) {
    return absl::InvalidArgumentError("days must be at most 3650");
  }
  const uint64_t now = tx.Now();
  const int64_t now_ms = static_cast<int64_t>(now >> 16);
  const int64_t since_ms = std::max<int64_t>(0, now_ms - int64_t{window} * kDayMs);

  std::map<std::string, int64_t> units_out;
  {
    auto q = tx.stmts().Get(
        "SELECT sku, SUM(quantity) FROM movements WHERE type = ? AND hlc >= ? GROUP BY sku");
    q->bind(1, static_cast<int>(v1::CONSUME));
    q->bind(2, static_cast<int64_t>(static_cast<uint64_t>(since_ms) << 16));
    while (q->executeStep()) units_out[q->getColumn(0).getString()] = q->getColumn(1).getInt64();
  }
  std::set<std::string> stocked;
  {
    auto q = tx.stmts().Get("SELECT DISTINCT sku FROM balances WHERE bin != ?");
    q->bind(1, kStagingBin);
    while (q->executeStep()) stocked.insert(q->getColumn(0).getString());
  }
  for (const auto& s : stocked) units_out.try_emplace(s, 0);
  const std::map<std::string, char> classes = ClassifyAbc(units_out, a_share, b_share);
  // A SKU was counted when a count of the whole SKU (no bin) posted a line of it.
  std::map<std::string, uint64_t> last_counted;
  {
    auto q = tx.stmts().Get(
        "SELECT l.sku, MAX(l.posted_hlc) FROM count_lines l JOIN count_tasks t "
        "ON t.count_id = l.count_id WHERE l.status = ? AND t.bin = '' AND t.sku = l.sku "
        "GROUP BY l.sku");
    q->bind(1, static_cast<int>(v1::COUNT_LINE_POSTED));
    while (q->executeStep()) {
      last_counted[q->getColumn(0).getString()] = q->getColumn(1).getInt64();
    }
  }
  // A first, then B, then C; by volume within a class.
  std::vector<std::string> order;
  for (const auto& [sku, units] : units_out) order.push_back(sku);
  std::stable_sort(order.begin(), order.end(), [&](const std::string& x, const std::string& y) {
    const char cx = classes.at(x), cy = classes.at(y);
    if (cx != cy) return cx < cy;
    return units_out.at(x) > units_out.at(y);
  });
  uint32_t created = 0;
  for (const auto& sku : order) {
    const char abc = classes.at(sku);
    v1::SkuCountClass* c = out->add_classes();
    c->set_sku(sku);
    c->set_abc(std::string(1, abc));
    c->set_units_out(units_out.at(sku));
    auto last = last_counted.find(sku);
    const uint64_t last_hlc = last == last_counted.end() ? 0 : last->second;
    c->set_last_counted_hlc(last_hlc);
    const int64_t days = interval[abc - 'A'];
    const bool due =
        last_hlc == 0 || now_ms - static_cast<int64_t>(last_hlc >> 16) >= days * kDayMs;
    c->set_due(due);
    if (!due || !stocked.count(sku) || created >= limit) continue;
    {  // a count already open on any of its stock: not again
      auto q = tx.stmts().Get("SELECT 1 FROM count_lines WHERE sku = ? AND status != ? LIMIT 1");
      q->bind(1, sku);
      q->bind(2, static_cast<int>(v1::COUNT_LINE_POSTED));
      if (q->executeStep()) continue;
    }
    auto task = Create(tx, {.sku = sku,
                            .bin = "",
                            .origin = StrCat("abc:", std::string(1, abc)),
                            .tolerance_units = defaults.units,
                            .tolerance_percent = defaults.percent,
                            .start = r.start()});
    if (!task.ok()) {
      if (task.status().code() == absl::StatusCode::kFailedPrecondition) continue;
      return task.status();
    }
    c->set_count_id(task->count_id());
    *out->add_counts() = std::move(*task);
    ++created;
  }
  return absl::OkStatus();
}

}  // namespace

bool WithinTolerance(int64_t variance, int64_t expected, int64_t units, int64_t percent) {
  const int64_t v = std::llabs(variance);
  if (v <= units) return true;
  return v * 100 <= percent * std::llabs(expected);
}

std::map<std::string, char> ClassifyAbc(const std::map<std::string, int64_t>& units_out,
                                        uint32_t a_share_percent, uint32_t b_share_percent) {
  std::vector<std::pair<std::string, int64_t>> v(units_out.begin(), units_out.end());
  std::stable_sort(v.begin(), v.end(),
                   [](const auto& x, const auto& y) { return x.second > y.second; });
  int64_t total = 0;
  for (const auto& [sku, units] : v) total += std::max<int64_t>(0, units);
  std::map<std::string, char> out;
  int64_t before = 0;
  for (const auto& [sku, units] : v) {
    char c = 'C';
    if (units > 0 && total > 0) {
      // before / total < share / 100, in integers.
      if (before * 100 < int64_t{a_share_percent} * total) {
        c = 'A';
      } else if (before * 100 < int64_t{a_share_percent + b_share_percent} * total) {
        c = 'B';
      }
      before += units;
    }
    out[sku] = c;
  }
  return out;
}

void Blind(v1::CountTask* task) {
  task->set_blind(true);
  for (auto& l : *task->mutable_lines()) {
    l.clear_expected();
    l.clear_variance();
    l.clear_within_tolerance();
  }
}

bool IsCountOp(const v1::Operation& op) {
  switch (op.op_case()) {
    case v1::Operation::kCountCreate:
    case v1::Operation::kCountStart:
    case v1::Operation::kCountSubmit:
    case v1::Operation::kCountReview:
    case v1::Operation::kCountGenerate:
      return true;
    default:
      return false;
  }
}

absl::Status Apply(LedgerTx& tx, const CountTolerance& defaults, const v1::Operation& op,
                   v1::OperationResult* result) {
  absl::StatusOr<v1::CountTask> t;
  switch (op.op_case()) {
    case v1::Operation::kCountCreate: {
      const auto& r = op.count_create();
      t = Create(tx, {.sku = r.sku(),
                      .bin = r.bin(),
                      .origin = "manual",
                      .tolerance_units =
                          r.has_tolerance_units() ? r.tolerance_units() : defaults.units,
                      .tolerance_percent =
                          r.has_tolerance_percent() ? r.tolerance_percent() : defaults.percent,
                      .start = r.start()});
      break;
    }
    case v1::Operation::kCountStart: {
      t = ReadTask(tx.stmts(), op.count_start().count_id());
      if (t.ok()) {
        if (auto s = StartLines(tx, &*t); !s.ok()) return s;
        SaveStatus(tx, &*t, tx.Now());
      }
      break;
    }
    case v1::Operation::kCountSubmit: t = Submit(tx, op.count_submit(), result); break;
    case v1::Operation::kCountReview: t = Review(tx, op.count_review(), result); break;
    case v1::Operation::kCountGenerate:
      return Generate(tx, defaults, op.count_generate(), result->mutable_count_generation());
    default: return absl::InvalidArgumentError("not a count operation");
  }
  if (!t.ok()) return t.status();
  *result->mutable_count() = std::move(*t);
  return absl::OkStatus();
}

absl::StatusOr<v1::CountsResponse> List(StmtCache& db, v1::CountStatus status, uint32_t limit) {
  const int64_t n = std::clamp<uint32_t>(limit == 0 ? 100 : limit, 1, 10000);
  v1::CountsResponse out;
  SQLite::Transaction snapshot(db.db());
  auto q = db.Get(
      "SELECT count_id, sku, bin, status, origin, tolerance_units, tolerance_percent, "
      "created_by, created_hlc FROM count_tasks WHERE (?1 = 0 OR status = ?1) "
      "ORDER BY n DESC LIMIT ?2");
  q->bind(1, static_cast<int>(status));
  q->bind(2, n);
  while (q->executeStep()) ReadHeader(*q, out.add_counts());
  for (auto& t : *out.mutable_counts()) ReadLines(db, &t);
  return out;
}

absl::StatusOr<v1::CountTask> Get(StmtCache& db, const std::string& count_id) {
  SQLite::Transaction snapshot(db.db());
  return ReadTask(db, count_id);
}

absl::StatusOr<v1::CountKpi> Kpi(StmtCache& db, uint64_t since_hlc) {
  v1::CountKpi k;
  SQLite::Transaction snapshot(db.db());
  {
    auto q = db.Get(
        "SELECT COUNT(*), COALESCE(SUM(within_tolerance), 0), COALESCE(SUM(ABS(variance)), 0), "
        "COALESCE(SUM(variance), 0) FROM count_lines WHERE status = ? AND posted_hlc >= ?");
    q->bind(1, static_cast<int>(v1::COUNT_LINE_POSTED));
    q->bind(2, static_cast<int64_t>(since_hlc));
    if (q->executeStep()) {
      k.set_lines(q->getColumn(0).getInt64());
      k.set_within_tolerance(q->getColumn(1).getInt64());
      k.set_abs_variance(q->getColumn(2).getInt64());
      k.set_net_variance(q->getColumn(3).getInt64());
    }
  }
  if (k.lines() > 0) {
    k.set_accuracy(static_cast<double>(k.within_tolerance()) / static_cast<double>(k.lines()));
  }
  {
    auto q = db.Get("SELECT COUNT(*) FROM count_tasks WHERE status != ?");
    q->bind(1, static_cast<int>(v1::COUNT_DONE));
    if (q->executeStep()) k.set_open_counts(q->getColumn(0).getInt64());
  }
  {
    auto q = db.Get("SELECT COUNT(*) FROM count_lines WHERE status = ?");
    q->bind(1, static_cast<int>(v1::COUNT_LINE_PENDING_APPROVAL));
    if (q->executeStep()) k.set_pending_approval(q->getColumn(0).getInt64());
  }
  return k;
}

uint64_t LastHlc(StmtCache& db) {
  auto q = db.Get(
      "SELECT MAX((SELECT COALESCE(MAX(hlc), 0) FROM count_tasks), "
      "(SELECT COALESCE(MAX(posted_hlc), 0) FROM count_lines))");
  return q->executeStep() ? static_cast<uint64_t>(q->getColumn(0).getInt64()) : 0;
}

}  // namespace depot::node::counts

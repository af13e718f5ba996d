#include "node/fulfilment.h"

#include <algorithm>
#include <map>
#include <set>

#include <SQLiteCpp/Transaction.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/order_state.h"
#include "common/stock_rules.h"
#include "spdlog/spdlog.h"

namespace depot::node::fulfilment {

const char* const kSchema = R"sql(
-- Order fulfilment at this node (node/fulfilment.h). seq is the arrival order (waves take the
-- oldest first); hlc is the clock of the last change (observed at open).
CREATE TABLE fulfilments(
  seq INTEGER PRIMARY KEY, fulfilment_id TEXT NOT NULL UNIQUE, order_id TEXT NOT NULL,
  status INTEGER NOT NULL, channel TEXT NOT NULL, service_level TEXT NOT NULL,
  ship_to BLOB, carrier TEXT NOT NULL, tracking TEXT NOT NULL, wave_id TEXT NOT NULL,
  cancel_requested INTEGER NOT NULL, local_kind INTEGER NOT NULL,
  released_hlc INTEGER NOT NULL, hlc INTEGER NOT NULL);
CREATE INDEX fulfilments_by_status ON fulfilments(status, seq);
CREATE INDEX fulfilments_by_wave ON fulfilments(wave_id, seq);
CREATE INDEX fulfilments_by_hlc ON fulfilments(hlc);
-- reserved: the line's open reservation (picked units stay reserved until they ship).
CREATE TABLE fulfilment_lines(
  fulfilment_id TEXT NOT NULL, line_no INTEGER NOT NULL, sku TEXT NOT NULL,
  quantity INTEGER NOT NULL, reserved INTEGER NOT NULL, picked INTEGER NOT NULL,
  short_quantity INTEGER NOT NULL, shipped INTEGER NOT NULL, short_reason TEXT NOT NULL,
  unit_price_cents INTEGER NOT NULL,
  PRIMARY KEY(fulfilment_id, line_no)) WITHOUT ROWID;
-- Where each pick came from: ship consumes it from the staging bin, cancel puts it back.
CREATE TABLE picks(
  fulfilment_id TEXT NOT NULL, pick_no INTEGER NOT NULL, line_no INTEGER NOT NULL,
  sku TEXT NOT NULL, bin TEXT NOT NULL, lot TEXT NOT NULL, quantity INTEGER NOT NULL,
  serials TEXT NOT NULL, PRIMARY KEY(fulfilment_id, pick_no)) WITHOUT ROWID;
-- items: "sku<TAB>quantity" lines.
CREATE TABLE packages(
  fulfilment_id TEXT NOT NULL, package_no INTEGER NOT NULL, package_id TEXT NOT NULL,
  weight_g INTEGER NOT NULL, length_mm INTEGER NOT NULL, width_mm INTEGER NOT NULL,
  height_mm INTEGER NOT NULL, items TEXT NOT NULL,
  PRIMARY KEY(fulfilment_id, package_no)) WITHOUT ROWID;
CREATE TABLE waves(
  wave_id TEXT PRIMARY KEY, n INTEGER NOT NULL UNIQUE, hlc INTEGER NOT NULL,
  operator TEXT NOT NULL, service_level TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE pick_tasks(
  wave_id TEXT NOT NULL, task_no INTEGER NOT NULL, bin TEXT NOT NULL, walk_order INTEGER NOT NULL,
  sku TEXT NOT NULL, lot TEXT NOT NULL, expiry TEXT NOT NULL, quantity INTEGER NOT NULL,
  fulfilment_id TEXT NOT NULL, line_no INTEGER NOT NULL, picked INTEGER NOT NULL,
  PRIMARY KEY(wave_id, task_no)) WITHOUT ROWID;
CREATE INDEX pick_tasks_by_fulfilment ON pick_tasks(fulfilment_id, line_no);
)sql";

namespace {

using absl::StrCat;
using orders::NodeAction;

constexpr uint32_t kDefaultWaveSize = 50;

// One fulfilment as stored.
struct Record {
  v1::NodeFulfilment f;
  std::map<uint32_t, int64_t> unit_price;  // line_no -> price (local orders)
};

absl::Status NotFound(const std::string& id) {
  return absl::NotFoundError(StrCat("unknown fulfilment '", id, "'"));
}

void ReadLines(StmtCache& db, Record* r) {
  auto q = db.Get(
      "SELECT line_no, sku, quantity, reserved, picked, short_quantity, shipped, short_reason, "
      "unit_price_cents FROM fulfilment_lines WHERE fulfilment_id = ? ORDER BY line_no");
  q->bind(1, r->f.fulfilment_id());
  while (q->executeStep()) {
    auto* l = r->f.add_lines();
    l->set_line_no(static_cast<uint32_t>(q->getColumn(0).getInt64()));
    l->set_sku(q->getColumn(1).getString());
    l->set_quantity(q->getColumn(2).getInt64());
    l->set_reserved(q->getColumn(3).getInt64());
    l->set_picked(q->getColumn(4).getInt64());
    l->set_short_quantity(q->getColumn(5).getInt64());
    l->set_shipped(q->getColumn(6).getInt64());
    l->set_short_reason(q->getColumn(7).getString());
    r->unit_price[l->line_no()] = q->getColumn(8).getInt64();
  }
}

void ReadPackages(StmtCache& db, Record* r) {
  auto q = db.Get(
      "SELECT package_id, weight_g, length_mm, width_mm, height_mm, items FROM packages "
      "WHERE fulfilment_id = ? ORDER BY package_no");
  q->bind(1, r->f.fulfilment_id());
  while (q->executeStep()) {
    auto* p = r->f.add_packages();
    p->set_package_id(q->getColumn(0).getString());
    p->set_weight_g(q->getColumn(1).getInt64());
    p->set_length_mm(q->getColumn(2).getInt64());
    p->set_width_mm(q->getColumn(3).getInt64());
    p->set_height_mm(q->getColumn(4).getInt64());
    for (auto line : absl::StrSplit(q->getColumn(5).getString(), '\n', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(line, '\t');
      auto* item = p->add_items();
      item->set_sku(kv.first);
      item->set_quantity(std::stoll(kv.second));
    }
  }
}

// Columns: fulfilment_id, order_id, status, channel, service_level, ship_to, carrier, tracking,
// wave_id, cancel_requested, local_kind.
void ReadHeader(SQLite::Statement& q, Record* r) {
  r->f.set_fulfilment_id(q.getColumn(0).getString());
  r->f.set_order_id(q.getColumn(1).getString());
  r->f.set_status(static_cast<v1::FulfilmentStatus>(q.getColumn(2).getInt()));
  r->f.set_channel(q.getColumn(3).getString());
  r->f.set_service_level(q.getColumn(4).getString());
  if (!q.isColumnNull(5)) {
    auto col = q.getColumn(5);
    r->f.mutable_ship_to()->ParseFromArray(col.getBlob(), col.getBytes());
  }
  r->f.set_carrier(q.getColumn(6).getString());
  r->f.set_tracking(q.getColumn(7).getString());
  r->f.set_wave_id(q.getColumn(8).getString());
  r->f.set_cancel_requested(q.getColumn(9).getInt() != 0);
  r->f.set_local_kind(static_cast<v1::LocalOrderKind>(q.getColumn(10).getInt()));
}

absl::StatusOr<Record> Load(StmtCache& db, const std::string& id) {
  Record r;
  {
    auto q = db.Get(
        "SELECT fulfilment_id, order_id, status, channel, service_level, ship_to, carrier, "
        "tracking, wave_id, cancel_requested, local_kind FROM fulfilments "
        "WHERE fulfilment_id = ?");
    q->bind(1, id);
    if (!q->executeStep()) return NotFound(id);
    ReadHeader(*q, &r);
  }
  ReadLines(db, &r);
  ReadPackages(db, &r);
  return r;
}

bool Exists(StmtCache& db, const std::string& id) {
  auto q = db.Get("SELECT 1 FROM fulfilments WHERE fulfilment_id = ?");
  q->bind(1, id);
  return q->executeStep();
}

// Inserts a new fulfilment with its lines (status as in r).
void Create(LedgerTx& tx, const Record& r, uint64_t released_hlc) {
  std::string ship_to;
  if (r.f.has_ship_to()) r.f.ship_to().SerializeToString(&ship_to);
  auto ins = tx.stmts().Get(
      "INSERT INTO fulfilments(fulfilment_id, order_id, status, channel, service_level, ship_to, "
      "carrier, tracking, wave_id, cancel_requested, local_kind, released_hlc, hlc) "
      "VALUES (?, ?, ?, ?, ?, ?, '', '', '', ?, ?, ?, 0)");
  ins->bind(1, r.f.fulfilment_id());
  ins->bind(2, r.f.order_id());
  ins->bind(3, static_cast<int>(r.f.status()));
  ins->bind(4, r.f.channel());
  ins->bind(5, r.f.service_level());
  if (r.f.has_ship_to()) {
    ins->bind(6, ship_to.data(), static_cast<int>(ship_to.size()));
  } else {
    ins->bind(6);
  }
  ins->bind(7, r.f.cancel_requested() ? 1 : 0);
  ins->bind(8, static_cast<int>(r.f.local_kind()));
  ins->bind(9, static_cast<int64_t>(released_hlc));
  ins->exec();
  for (const auto& l : r.f.lines()) {
    auto li = tx.stmts().Get(
        "INSERT INTO fulfilment_lines(fulfilment_id, line_no, sku, quantity, reserved, picked, "
        "short_quantity, shipped, short_reason, unit_price_cents) "
        "VALUES (?, ?, ?, ?, 0, 0, 0, 0, '', ?)");
    li->bind(1, r.f.fulfilment_id());
    li->bind(2, static_cast<int64_t>(l.line_no()));
    li->bind(3, l.sku());
    li->bind(4, l.quantity());
    auto price = r.unit_price.find(l.line_no());
    li->bind(5, price == r.unit_price.end() ? int64_t{0} : price->second);
    li->exec();
  }
}

// Stores r's state and appends its FulfilmentUpdate (the whole state) to the outbox.
// Stores the fulfilment's state and, when `report`, emits its FulfilmentUpdate to the outbox.
// Writes the fulfilment's new state and its update event. Fails only on storage errors (also
// of the rights book, which it tells about shipped and shorted units of central's orders).
absl::Status Commit(LedgerTx& tx, const Record& r, const std::string& change,
                    const std::string& note, bool report = true) {
  absl::Status rights_status;
  const uint64_t hlc = tx.Now();
  {
    auto up = tx.stmts().Get(
        "UPDATE fulfilments SET status = ?, carrier = ?, tracking = ?, wave_id = ?, "
        "cancel_requested = ?, hlc = ? WHERE fulfilment_id = ?");
    up->bind(1, static_cast<int>(r.f.status()));
    up->bind(2, r.f.carrier());
    up->bind(3, r.f.tracking());
    up->bind(4, r.f.wave_id());
    up->bind(5, r.f.cancel_requested() ? 1 : 0);
    up->bind(6, static_cast<int64_t>(hlc));
    up->bind(7, r.f.fulfilment_id());
    up->exec();
  }
  const bool central_order = r.f.local_kind() == v1::LOCAL_ORDER_KIND_UNSPECIFIED;
  for (const auto& l : r.f.lines()) {
    if (central_order) {
      // Central's rights: shipped units are consumed, shorted units come back (rights_book.h).
      auto old = tx.stmts().Get(
          "SELECT shipped, short_quantity FROM fulfilment_lines "
          "WHERE fulfilment_id = ? AND line_no = ?");
      old->bind(1, r.f.fulfilment_id());
      old->bind(2, static_cast<int64_t>(l.line_no()));
      if (old->executeStep()) {
        const int64_t shipped = l.shipped() - old->getColumn(0).getInt64();
        const int64_t returned = l.short_quantity() - old->getColumn(1).getInt64();
        if (shipped > 0 || returned > 0) {
          absl::Status d = tx.rights().CentralDelta(tx, l.sku(), shipped, returned,
                                                   r.f.fulfilment_id());
          if (rights_status.ok()) rights_status = d;
        }
      }
    }
    auto up = tx.stmts().Get(
        "UPDATE fulfilment_lines SET reserved = ?, picked = ?, short_quantity = ?, shipped = ?, "
        "short_reason = ? WHERE fulfilment_id = ? AND line_no = ?");
    up->bind(1, l.reserved());
    up->bind(2, l.picked());
    up->bind(3, l.short_quantity());
    up->bind(4, l.shipped());
    up->bind(5, l.short_reason());
    up->bind(6, r.f.fulfilment_id());
    up->bind(7, static_cast<int64_t>(l.line_no()));
    up->exec();
  }
  v1::Event e;
  e.set_hlc(hlc);
  v1::FulfilmentUpdate* u = e.mutable_fulfilment();
  u->set_fulfilment_id(r.f.fulfilment_id());
  u->set_order_id(r.f.order_id());
  u->set_status(r.f.status());
  *u->mutable_lines() = r.f.lines();
  *u->mutable_packages() = r.f.packages();
  u->set_carrier(r.f.carrier());
  u->set_tracking(r.f.tracking());
  u->set_change(change);
  u->set_note(note);
  u->set_hlc(hlc);
  u->set_wave_id(r.f.wave_id());
  u->set_local_kind(r.f.local_kind());
  if (r.f.local_kind() != v1::LOCAL_ORDER_KIND_UNSPECIFIED) {
    for (const auto& l : r.f.lines()) {
      auto* ll = u->add_local_lines();
      ll->set_sku(l.sku());
      ll->set_quantity(l.quantity());
      auto price = r.unit_price.find(l.line_no());
      ll->set_unit_price_cents(price == r.unit_price.end() ? 0 : price->second);
    }
  }
  u->set_operator_id(tx.context().operator_id);
  if (report) tx.Emit(std::move(e));
  return rights_status;
}

absl::Status Transition(Record* r, NodeAction a) {
  auto next = orders::NodeTransition(r->f.status(), a);
  if (!next.ok()) return next.status();
  r->f.set_status(*next);
  return absl::OkStatus();
}

int64_t Open(const v1::FulfilmentLine& l) { return l.reserved() - l.picked(); }

// Every line picked or shorted.
bool AllDone(const Record& r) {
  for (const auto& l : r.f.lines()) {
    if (l.picked() + l.short_quantity() < l.quantity()) return false;
  }
  return true;
}

int64_t TotalPicked(const Record& r) {
  int64_t n = 0;
  for (const auto& l : r.f.lines()) n += l.picked();
  return n;
}

// ---- stock operations through the ledger ---------------------------------------------------

absl::Status Move(LedgerTx& tx, const std::string& sku, const std::string& from,
                  const std::string& to, int64_t q, const std::string& lot,
                  const std::vector<std::string>& serials, const std::string& ref,
                  const std::string& reason) {
  v1::Operation op;
  auto* m = op.mutable_move();
  m->set_sku(sku);
  m->set_from_bin(from);
  m->set_to_bin(to);
  m->set_quantity(q);
  m->set_lot(lot);
  for (const auto& s : serials) m->add_serials(s);
  m->set_reference(ref);
  m->set_reason(reason);
  return tx.Stock(op);
}

absl::Status Consume(LedgerTx& tx, const std::string& sku, const std::string& ref, int64_t q,
                     const std::string& bin, const std::string& lot,
                     const std::vector<std::string>& serials) {
  v1::Operation op;
  auto* c = op.mutable_consume();
  c->set_sku(sku);
  c->set_reference(ref);
  c->set_quantity(q);
  c->set_bin(bin);
  c->set_lot(lot);
  for (const auto& s : serials) c->add_serials(s);
  return tx.Stock(op);
}

int64_t OpenReservation(LedgerTx& tx, const std::string& sku, const std::string& ref) {
  auto q = tx.stmts().Get("SELECT quantity FROM reservations WHERE sku = ? AND reference = ?");
  q->bind(1, sku);
  q->bind(2, ref);
  return q->executeStep() ? q->getColumn(0).getInt64() : 0;
}

// Releases whatever is still reserved for the fulfilment; lines keep no reservation.
absl::Status ReleaseRest(LedgerTx& tx, Record* r) {
  std::set<std::string> skus;
  for (const auto& l : r->f.lines()) skus.insert(l.sku());
  for (const auto& sku : skus) {
    if (OpenReservation(tx, sku, r->f.fulfilment_id()) > 0) {
      if (auto s = ReleaseStock(tx, sku, r->f.fulfilment_id(), 0); !s.ok()) return s;
    }
  }
  for (auto& l : *r->f.mutable_lines()) l.set_reserved(0);
  return absl::OkStatus();
}

// Picked goods of a fulfilment, grouped by (sku, lot) or (sku, bin, lot).
struct PickGroup {
  std::string sku, bin, lot;
  int64_t quantity = 0;
  std::vector<std::string> serials;
};
std::vector<PickGroup> PickGroups(LedgerTx& tx, const std::string& id, bool by_bin) {
  std::map<std::tuple<std::string, std::string, std::string>, PickGroup> groups;
  auto q = tx.stmts().Get(
      "SELECT sku, bin, lot, quantity, serials FROM picks WHERE fulfilment_id = ? "
      "ORDER BY pick_no");
  q->bind(1, id);
  while (q->executeStep()) {
    std::string sku = q->getColumn(0).getString(), bin = q->getColumn(1).getString(),
                lot = q->getColumn(2).getString();
    auto& g = groups[{sku, by_bin ? bin : "", lot}];
    g.sku = sku;
    g.bin = by_bin ? bin : "";
    g.lot = lot;
    g.quantity += q->getColumn(3).getInt64();
    std::string serials = q->getColumn(4).getString();
    for (auto s : absl::StrSplit(serials, '\n', absl::SkipEmpty())) g.serials.emplace_back(s);
  }
  std::vector<PickGroup> out;
  for (auto& [k, g] : groups) out.push_back(std::move(g));
  return out;
}

// Consumes the picked goods of r from the staging bin.
absl::Status ConsumePicked(LedgerTx& tx, const Record& r) {
  for (const auto& g : PickGroups(tx, r.f.fulfilment_id(), /*by_bin=*/false)) {
    if (g.quantity <= 0) continue;
    if (auto s = Consume(tx, g.sku, r.f.fulfilment_id(), g.quantity, kStagingBin, g.lot,
                         g.serials);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Record> LoadForWrite(LedgerTx& tx, const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("fulfilment_id is required");
  return Load(tx.stmts(), id);
}

// ---- waves -----------------------------------------------------------------------------------

absl::Status CreateWave(LedgerTx& tx, const v1::CreateWaveRequest& req, v1::Wave* wave) {
  const uint32_t max = req.max_orders() == 0 ? kDefaultWaveSize : std::min(req.max_orders(), 1000u);
  std::vector<std::string> ids;
  {
    auto q = tx.stmts().Get(
        "SELECT fulfilment_id FROM fulfilments WHERE status IN (?1, ?2) AND wave_id = '' "
        "AND local_kind = 0 AND (?3 = '' OR service_level = ?3) ORDER BY seq LIMIT ?4");
    q->bind(1, static_cast<int>(v1::FULFILMENT_ACCEPTED));
    q->bind(2, static_cast<int>(v1::FULFILMENT_PICKING));
    q->bind(3, req.service_level());
    q->bind(4, static_cast<int64_t>(max));
    while (q->executeStep()) ids.push_back(q->getColumn(0).getString());
  }
  if (ids.empty()) {
    return absl::FailedPreconditionError(
        req.service_level().empty()
            ? std::string("no released orders to wave")
            : StrCat("no released orders to wave (service level '", req.service_level(), "')"));
  }
  int64_t n = 0;
  {
    auto q = tx.stmts().Get("SELECT COALESCE(MAX(n), 0) + 1 FROM waves");
    q->executeStep();
    n = q->getColumn(0).getInt64();
  }
  const std::string wave_id = StrCat("W", n);
  {
    auto ins = tx.stmts().Get(
        "INSERT INTO waves(wave_id, n, hlc, operator, service_level) VALUES (?, ?, ?, ?, ?)");
    ins->bind(1, wave_id);
    ins->bind(2, n);
    ins->bind(3, static_cast<int64_t>(tx.Now()));
    ins->bind(4, tx.context().operator_id);
    ins->bind(5, req.service_level());
    ins->exec();
  }
  // Stock already promised to open tasks of other waves (lines still open).
  std::map<std::tuple<std::string, std::string, std::string>, int64_t> promised;
  {
    auto q = tx.stmts().Get(
        "SELECT t.sku, t.bin, t.lot, SUM(t.quantity - t.picked) FROM pick_tasks t "
        "JOIN fulfilments f ON f.fulfilment_id = t.fulfilment_id "
        "JOIN fulfilment_lines l ON l.fulfilment_id = t.fulfilment_id AND l.line_no = t.line_no "
        "WHERE f.status IN (?1, ?2) AND t.picked < t.quantity AND l.reserved > l.picked "
        "GROUP BY t.sku, t.bin, t.lot");
    q->bind(1, static_cast<int>(v1::FULFILMENT_ACCEPTED));
    q->bind(2, static_cast<int>(v1::FULFILMENT_PICKING));
    while (q->executeStep()) {
      promised[{q->getColumn(0).getString(), q->getColumn(1).getString(),
                q->getColumn(2).getString()}] = q->getColumn(3).getInt64();
    }
  }
  wave->set_wave_id(wave_id);
  const std::string today = tx.Today();
  std::vector<v1::PickTask> tasks;
  for (const auto& id : ids) {
    auto up = tx.stmts().Get("UPDATE fulfilments SET wave_id = ? WHERE fulfilment_id = ?");
    up->bind(1, wave_id);
    up->bind(2, id);
    up->exec();
    wave->add_fulfilment_ids(id);
    Record r;
    r.f.set_fulfilment_id(id);
    ReadLines(tx.stmts(), &r);
    for (const auto& l : r.f.lines()) {
      int64_t open = Open(l);
      if (open <= 0) continue;
      // First expiry first out, then bin walk order; never the staging bin nor an expired lot.
      auto q = tx.stmts().Get(
          "SELECT b.bin, b.lot, b.on_hand, COALESCE(lt.expiry, ''), COALESCE(n.walk_order, 0) "
          "FROM balances b LEFT JOIN lots lt ON lt.sku = b.sku AND lt.lot = b.lot "
          "LEFT JOIN bins n ON n.code = b.bin "
          "WHERE b.sku = ? AND b.on_hand > 0 AND b.bin <> 'STAGING' "
          "AND (lt.expiry IS NULL OR lt.expiry = '' OR lt.expiry >= ?) "
          "ORDER BY COALESCE(NULLIF(lt.expiry, ''), '9999-99-99'), n.walk_order, b.bin, b.lot");
      q->bind(1, l.sku());
      q->bind(2, today);
      while (open > 0 && q->executeStep()) {
        std::string bin = q->getColumn(0).getString(), lot = q->getColumn(1).getString();
        int64_t& taken = promised[{l.sku(), bin, lot}];
        int64_t take = std::min(open, q->getColumn(2).getInt64() - taken);
        if (take <= 0) continue;
        taken += take;
        open -= take;
        v1::PickTask t;
        t.set_bin(bin);
        t.set_walk_order(q->getColumn(4).getInt64());
        t.set_sku(l.sku());
        t.set_lot(lot);
        t.set_expiry(q->getColumn(3).getString());
        t.set_quantity(take);
        t.set_fulfilment_id(id);
        t.set_line_no(l.line_no());
        tasks.push_back(std::move(t));
      }
    }
  }
  std::stable_sort(tasks.begin(), tasks.end(), [](const v1::PickTask& a, const v1::PickTask& b) {
    return std::make_tuple(a.walk_order(), a.bin(), a.sku(), a.lot()) <
           std::make_tuple(b.walk_order(), b.bin(), b.sku(), b.lot());
  });
  int64_t task_no = 0;
  for (auto& t : tasks) {
    auto ins = tx.stmts().Get(
        "INSERT INTO pick_tasks(wave_id, task_no, bin, walk_order, sku, lot, expiry, quantity, "
        "fulfilment_id, line_no, picked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)");
    ins->bind(1, wave_id);
    ins->bind(2, ++task_no);
    ins->bind(3, t.bin());
    ins->bind(4, t.walk_order());
    ins->bind(5, t.sku());
    ins->bind(6, t.lot());
    ins->bind(7, t.expiry());
    ins->bind(8, t.quantity());
    ins->bind(9, t.fulfilment_id());
    ins->bind(10, static_cast<int64_t>(t.line_no()));
    ins->exec();
    *wave->add_tasks() = std::move(t);
  }
  return absl::OkStatus();
}

// ---- pick, short, pack, ship -----------------------------------------------------------------

// The SKU a scanned item names: a SKU code, else a GTIN (preferring a SKU on the fulfilment).
absl::StatusOr<std::string> ResolveItem(LedgerTx& tx, const Record& r, const std::string& item) {
  if (item.empty()) return absl::InvalidArgumentError("item (SKU code or GTIN) is required");
  if (auto sku = tx.Sku(item); sku.ok()) return sku->code();
  std::vector<std::string> codes;
  auto q = tx.stmts().Get("SELECT code FROM skus WHERE gtin = ? ORDER BY code");
  q->bind(1, item);
  while (q->executeStep()) codes.push_back(q->getColumn(0).getString());
  for (const auto& c : codes) {
    for (const auto& l : r.f.lines()) {
      if (l.sku() == c) return c;
    }
  }
  if (!codes.empty()) return codes.front();
  return absl::NotFoundError(StrCat("unknown item '", item, "': neither a SKU code nor a GTIN"));
}

absl::StatusOr<Record> Pick(LedgerTx& tx, const v1::PickRequest& req) {
  auto rec = LoadForWrite(tx, req.fulfilment_id());
  if (!rec.ok()) return rec.status();
  Record& r = *rec;
  const std::string& id = r.f.fulfilment_id();
  if (req.quantity() <= 0) return absl::InvalidArgumentError("quantity must be positive");
  if (auto s = CheckCode("bin", req.bin()); !s.ok()) return s;
  if (req.bin() == kStagingBin) {
    return absl::InvalidArgumentError("pick from a storage bin, not from the staging bin");
  }
  if (auto st = orders::NodeTransition(r.f.status(), NodeAction::kPick); !st.ok()) {
    return st.status();
  }
  auto sku = ResolveItem(tx, r, req.item());
  if (!sku.ok()) return sku.status();
  int64_t open = 0;
  bool on_fulfilment = false;
  for (const auto& l : r.f.lines()) {
    if (l.sku() != *sku) continue;
    on_fulfilment = true;
    open += std::max<int64_t>(0, Open(l));
  }
  if (!on_fulfilment) {
    return absl::FailedPreconditionError(
        StrCat("SKU '", *sku, "' is not on fulfilment '", id, "'"));
  }
  if (req.quantity() > open) {
    return absl::FailedPreconditionError(StrCat("fulfilment '", id, "' has ", open, " of SKU '",
                                                *sku, "' left to pick, not ", req.quantity()));
  }
  std::vector<std::string> serials(req.serials().begin(), req.serials().end());
  if (auto s = Move(tx, *sku, req.bin(), kStagingBin, req.quantity(), req.lot(), serials, id,
                    "pick");
      !s.ok()) {
    return s;
  }
  // Spread the units over the SKU's lines in line order; record where they came from.
  int64_t pick_no = 0;
  {
    auto q = tx.stmts().Get(
        "SELECT COALESCE(MAX(pick_no), 0) FROM picks WHERE fulfilment_id = ?");
    q->bind(1, id);
    q->executeStep();
    pick_no = q->getColumn(0).getInt64();
  }
  int64_t left = req.quantity();
  size_t next_serial = 0;
  for (auto& l : *r.f.mutable_lines()) {
    if (left == 0) break;
    if (l.sku() != *sku || Open(l) <= 0) continue;
    const int64_t take = std::min(left, Open(l));
    left -= take;
    l.set_picked(l.picked() + take);
    std::vector<std::string> mine;
    for (int64_t i = 0; i < take && next_serial < serials.size(); ++i) {
      mine.push_back(serials[next_serial++]);
    }
    auto ins = tx.stmts().Get(
        "INSERT INTO picks(fulfilment_id, pick_no, line_no, sku, bin, lot, quantity, serials) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    ins->bind(1, id);
    ins->bind(2, ++pick_no);
    ins->bind(3, static_cast<int64_t>(l.line_no()));
    ins->bind(4, *sku);
    ins->bind(5, req.bin());
    ins->bind(6, req.lot());
    ins->bind(7, take);
    ins->bind(8, absl::StrJoin(mine, "\n"));
    ins->exec();
    // Progress on the wave's tasks for this place.
    int64_t credit = take;
    std::vector<std::pair<int64_t, int64_t>> tasks;  // task_no, open
    std::string wave;
    {
      auto q = tx.stmts().Get(
          "SELECT wave_id, task_no, quantity - picked FROM pick_tasks WHERE fulfilment_id = ? "
          "AND line_no = ? AND bin = ? AND lot = ? AND picked < quantity ORDER BY task_no");
      q->bind(1, id);
      q->bind(2, static_cast<int64_t>(l.line_no()));
      q->bind(3, req.bin());
      q->bind(4, req.lot());
      while (q->executeStep()) {
        wave = q->getColumn(0).getString();
        tasks.emplace_back(q->getColumn(1).getInt64(), q->getColumn(2).getInt64());
      }
    }
    for (auto [task_no, task_open] : tasks) {
      if (credit == 0) break;
      const int64_t c = std::min(credit, task_open);
      credit -= c;
      auto up = tx.stmts().Get(
          "UPDATE pick_tasks SET picked = picked + ? WHERE wave_id = ? AND task_no = ?");
      up->bind(1, c);
      up->bind(2, wave);
      up->bind(3, task_no);
      up->exec();
    }
  }
  if (auto s = Transition(&r, AllDone(r) ? NodeAction::kPickDone : NodeAction::kPick); !s.ok()) {
    return s;
  }
  if (auto cs = Commit(tx, r, "picked", ""); !cs.ok()) return cs;
  return r;
}

absl::Status ShortLine(LedgerTx& tx, Record* rec, v1::FulfilmentLine* line, int64_t q,
                       const std::string& reason);

absl::StatusOr<Record> ShortPick(LedgerTx& tx, const v1::ShortPickRequest& req) {
  auto rec = LoadForWrite(tx, req.fulfilment_id());
  if (!rec.ok()) return rec.status();
  Record& r = *rec;
  const std::string& id = r.f.fulfilment_id();
  static const std::set<std::string> kReasons = {"not_found", "damaged", "wrong_item", "other"};
  if (!kReasons.count(req.reason())) {
    return absl::InvalidArgumentError(
        "reason is required: not_found, damaged, wrong_item or other");
  }
  if (req.quantity() < 0) return absl::InvalidArgumentError("quantity must not be negative");
  v1::FulfilmentLine* line = nullptr;
  for (auto& l : *r.f.mutable_lines()) {
    if (l.line_no() == req.line_no()) line = &l;
  }
  if (line == nullptr) {
    return absl::NotFoundError(StrCat("fulfilment '", id, "' has no line ", req.line_no()));
  }
  if (auto st = orders::CheckShortPick(r.f.status()); !st.ok()) return st;
  const int64_t open = Open(*line);
  if (open <= 0) {
    return absl::FailedPreconditionError(
        StrCat("line ", req.line_no(), " of fulfilment '", id, "' has nothing left to pick"));
  }
  const int64_t q = req.quantity() == 0 ? open : req.quantity();
  if (q > open) {
    return absl::FailedPreconditionError(StrCat("line ", req.line_no(), " of fulfilment '", id,
                                                "' has ", open, " left to pick, not ", q));
  }
  if (auto s = ShortLine(tx, &r, line, q, req.reason()); !s.ok()) return s;
  return r;
}

// Shorts q unpicked units of *line (validated by the caller) and commits the fulfilment.
absl::Status ShortLine(LedgerTx& tx, Record* rec, v1::FulfilmentLine* line, int64_t q,
                       const std::string& reason) {
  Record& r = *rec;
  const std::string& id = r.f.fulfilment_id();
  if (auto s = ReleaseStock(tx, line->sku(), id, q); !s.ok()) return s;
  line->set_reserved(line->reserved() - q);
  line->set_short_quantity(line->short_quantity() + q);
  line->set_short_reason(reason);
  if (AllDone(r) && TotalPicked(r) == 0) {
    // Nothing at all can be picked here: the fulfilment is over; central re-routes the shorts.
    if (auto s = ReleaseRest(tx, &r); !s.ok()) return s;
    if (auto s = Transition(&r, NodeAction::kCancel); !s.ok()) return s;
  } else if (AllDone(r)) {
    if (auto s = Transition(&r, NodeAction::kPickDone); !s.ok()) return s;
  } else if (TotalPicked(r) > 0) {
    if (auto s = Transition(&r, NodeAction::kPick); !s.ok()) return s;
  }
  return Commit(tx, r, "short", reason);
}

// report = false when the shipment follows in the same transaction (its update carries the
// packages).
absl::StatusOr<Record> Pack(LedgerTx& tx, const v1::PackRequest& req, bool report = true) {
  auto rec = LoadForWrite(tx, req.fulfilment_id());
  if (!rec.ok()) return rec.status();
  Record& r = *rec;
  const std::string& id = r.f.fulfilment_id();
  if (auto s = Transition(&r, NodeAction::kPack); !s.ok()) return s;
  std::map<std::string, int64_t> picked;  // by SKU, in line order below
  std::vector<std::string> order;
  for (const auto& l : r.f.lines()) {
    if (l.picked() <= 0) continue;
    if (!picked.count(l.sku())) order.push_back(l.sku());
    picked[l.sku()] += l.picked();
  }
  if (picked.empty()) {
    return absl::FailedPreconditionError(StrCat("fulfilment '", id, "' has nothing picked to pack"));
  }
  if (req.packages().empty()) return absl::InvalidArgumentError("name at least one package");
  std::vector<v1::Package> packages(req.packages().begin(), req.packages().end());
  bool any_items = false;
  for (size_t i = 0; i < packages.size(); ++i) {
    const auto& p = packages[i];
    if (p.weight_g() <= 0 || p.length_mm() <= 0 || p.width_mm() <= 0 || p.height_mm() <= 0) {
      return absl::InvalidArgumentError(
          StrCat("package ", i + 1, ": weight_g, length_mm, width_mm and height_mm must be "
                                    "positive"));
    }
    if (!p.items().empty()) any_items = true;
  }
  if (!any_items) {
    if (packages.size() > 1) {
      return absl::InvalidArgumentError(
          "packing into several packages: list the items of each package");
    }
    for (const auto& sku : order) {
      auto* item = packages[0].add_items();
      item->set_sku(sku);
      item->set_quantity(picked[sku]);
    }
  } else {
    std::map<std::string, int64_t> packed;
    for (size_t i = 0; i < packages.size(); ++i) {
      if (packages[i].items().empty()) {
        return absl::InvalidArgumentError(StrCat("package ", i + 1, " lists no items"));
      }
      for (const auto& item : packages[i].items()) {
        if (item.quantity() <= 0) {
          return absl::InvalidArgumentError(
              StrCat("package ", i + 1, ": item quantities must be positive"));
        }
        packed[item.sku()] += item.quantity();
      }
    }
    for (const auto& [sku, n] : packed) {
      if (!picked.count(sku)) {
        return absl::InvalidArgumentError(StrCat("SKU '", sku, "' was not picked for '", id, "'"));
      }
    }
    for (const auto& [sku, n] : picked) {
      if (packed[sku] != n) {
        return absl::InvalidArgumentError(
            StrCat("package items must add up to the picked quantities: SKU '", sku, "' picked ",
                   n, ", packed ", packed[sku]));
      }
    }
  }
  int64_t package_no = r.f.packages_size();
  for (auto& p : packages) {
    p.set_package_id(StrCat(id, "-P", ++package_no));
    std::string items;
    for (const auto& item : p.items()) absl::StrAppend(&items, item.sku(), "\t", item.quantity(), "\n");
    auto ins = tx.stmts().Get(
        "INSERT INTO packages(fulfilment_id, package_no, package_id, weight_g, length_mm, "
        "width_mm, height_mm, items) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    ins->bind(1, id);
    ins->bind(2, package_no);
    ins->bind(3, p.package_id());
    ins->bind(4, p.weight_g());
    ins->bind(5, p.length_mm());
    ins->bind(6, p.width_mm());
    ins->bind(7, p.height_mm());
    ins->bind(8, items);
    ins->exec();
    *r.f.add_packages() = std::move(p);
  }
  if (auto cs = Commit(tx, r, "packed", "", report); !cs.ok()) return cs;
  return r;
}

absl::StatusOr<Record> Ship(LedgerTx& tx, const v1::ShipRequest& req) {
  if (!req.packages().empty()) {  // pack-and-ship in one step
    if (auto s = CheckCode("carrier", req.carrier()); !s.ok()) return s;
    if (auto s = CheckCode("tracking", req.tracking()); !s.ok()) return s;
    v1::PackRequest pack;
    pack.set_fulfilment_id(req.fulfilment_id());
    *pack.mutable_packages() = req.packages();
    if (auto packed = Pack(tx, pack, /*report=*/false); !packed.ok()) return packed.status();
  }
  auto rec = LoadForWrite(tx, req.fulfilment_id());
  if (!rec.ok()) return rec.status();
  Record& r = *rec;
  if (auto s = CheckCode("carrier", req.carrier()); !s.ok()) return s;
  if (auto s = CheckCode("tracking", req.tracking()); !s.ok()) return s;
  if (auto s = Transition(&r, NodeAction::kShip); !s.ok()) return s;
  if (auto s = ConsumePicked(tx, r); !s.ok()) return s;
  for (auto& l : *r.f.mutable_lines()) l.set_shipped(l.picked());
  if (auto s = ReleaseRest(tx, &r); !s.ok()) return s;
  r.f.set_carrier(req.carrier());
  r.f.set_tracking(req.tracking());
  if (auto cs = Commit(tx, r, "shipped", ""); !cs.ok()) return cs;
  return r;
}

// ---- local orders ----------------------------------------------------------------------------

absl::StatusOr<Record> LocalOrder(LedgerTx& tx, const v1::LocalOrderRequest& req) {
  const auto kind = req.kind();
  if (kind != v1::COUNTER_SALE && kind != v1::CLICK_AND_COLLECT) {
    return absl::InvalidArgumentError("kind must be COUNTER_SALE or CLICK_AND_COLLECT");
  }
  if (req.lines().empty()) return absl::InvalidArgumentError("a local order needs lines");
  if (req.customer().size() > 200) return absl::InvalidArgumentError("customer is too long");
  std::map<std::string, int64_t> need;
  std::vector<std::string> order;
  for (const auto& l : req.lines()) {
    if (l.quantity() <= 0) {
      return absl::InvalidArgumentError(
          StrCat("quantity of SKU '", l.sku(), "' must be positive"));
    }
    if (l.unit_price_cents() < 0) {
      return absl::InvalidArgumentError(StrCat("price of SKU '", l.sku(), "' is negative"));
    }
    auto sku = tx.Sku(l.sku());
    if (!sku.ok()) return sku.status();
    if (kind == v1::COUNTER_SALE && sku->tracking() == v1::TRACKING_SERIAL) {
      return absl::FailedPreconditionError(
          StrCat("SKU '", l.sku(), "' is serial-tracked: take it as click-and-collect, pick it "
                                   "(scanning its serials) and hand it out"));
    }
    if (!need.count(l.sku())) order.push_back(l.sku());
    need[l.sku()] += l.quantity();
  }
  // Local selling rights first (rights_book.h): beyond them the sale is refused, offline too.
  for (const auto& sku : order) {
    if (auto s = tx.rights().LocalCommit(tx, sku, need[sku], kind == v1::COUNTER_SALE); !s.ok()) {
      return s;
    }
  }
  for (const auto& sku : order) {
    auto atp = tx.Atp(sku);
    if (!atp.ok()) return atp.status();
    if (need[sku] > atp->available()) {
      return absl::FailedPreconditionError(
          StrCat("only ", std::max<int64_t>(0, atp->available()), " of SKU '", sku,
                 "' available, ", need[sku], " asked"));
    }
  }
  std::string id;
  for (;;) {  // "<node>-L<n>"; skips an id central happened to use
    auto q = tx.stmts().Get(
        "INSERT INTO meta(key, value) VALUES ('local_orders', '1') ON CONFLICT(key) DO UPDATE "
        "SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) RETURNING value");
    q->executeStep();
    id = StrCat(tx.LocalIdPrefix(), q->getColumn(0).getString());
    while (q->executeStep()) {
    }
    if (!Exists(tx.stmts(), id)) break;
  }
  Record r;
  r.f.set_fulfilment_id(id);
  r.f.set_order_id(id);
  r.f.set_status(v1::FULFILMENT_RELEASED);
  r.f.set_local_kind(kind);
  r.f.set_channel(kind == v1::COUNTER_SALE ? "counter" : "click_and_collect");
  if (!req.customer().empty()) r.f.mutable_ship_to()->set_name(req.customer());
  uint32_t line_no = 0;
  for (const auto& l : req.lines()) {
    auto* fl = r.f.add_lines();
    fl->set_line_no(++line_no);
    fl->set_sku(l.sku());
    fl->set_quantity(l.quantity());
    r.unit_price[line_no] = l.unit_price_cents();
  }
  Create(tx, r, 0);
  for (auto& l : *r.f.mutable_lines()) {
    if (auto s = ReserveStock(tx, l.sku(), id, l.quantity()); !s.ok()) return s;
    l.set_reserved(l.quantity());
  }
  if (auto s = Transition(&r, NodeAction::kAccept); !s.ok()) return s;
  if (kind == v1::CLICK_AND_COLLECT) {
    if (auto cs = Commit(tx, r, "accepted", ""); !cs.ok()) return cs;
    return r;
  }
  // Counter sale: the goods leave now, first expiry first out, never from the staging bin.
  for (auto& l : *r.f.mutable_lines()) {
    if (auto s = Consume(tx, l.sku(), id, l.quantity(), "", "", {}); !s.ok()) return s;
    l.set_picked(l.quantity());
    l.set_shipped(l.quantity());
    l.set_reserved(0);
  }
  for (NodeAction a : {NodeAction::kPickDone, NodeAction::kPack, NodeAction::kShip}) {
    if (auto s = Transition(&r, a); !s.ok()) return s;
  }
  if (auto cs = Commit(tx, r, "shipped", ""); !cs.ok()) return cs;
  return r;
}

absl::StatusOr<Record> HandOut(LedgerTx& tx, const v1::HandOutRequest& req) {
  auto rec = LoadForWrite(tx, req.fulfilment_id());
  if (!rec.ok()) return rec.status();
  Record& r = *rec;
  const std::string& id = r.f.fulfilment_id();
  if (r.f.local_kind() != v1::CLICK_AND_COLLECT) {
    return absl::FailedPreconditionError(
        StrCat("fulfilment '", id, "' is not a click-and-collect order: pack and ship it"));
  }
  // Handing out is picking what is left, packing and shipping in one step at the counter.
  std::vector<NodeAction> steps;
  const int rank = orders::Rank(r.f.status());
  if (rank >= 1 && rank < orders::Rank(v1::FULFILMENT_PICKED)) steps.push_back(NodeAction::kPickDone);
  if (rank >= 1 && rank < orders::Rank(v1::FULFILMENT_PACKED)) steps.push_back(NodeAction::kPack);
  steps.push_back(NodeAction::kShip);
  for (NodeAction a : steps) {
    if (auto s = Transition(&r, a); !s.ok()) return s;
  }
  if (auto s = ConsumePicked(tx, r); !s.ok()) return s;
  for (auto& l : *r.f.mutable_lines()) {
    const int64_t rest = Open(l);
    if (rest > 0) {
      auto sku = tx.Sku(l.sku());
      if (!sku.ok()) return sku.status();
      if (sku->tracking() == v1::TRACKING_SERIAL) {
        return absl::FailedPreconditionError(
            StrCat("SKU '", l.sku(), "' is serial-tracked: pick it (scanning its serials) "
                                     "before handing it out"));
      }
      if (auto s = Consume(tx, l.sku(), id, rest, "", "", {}); !s.ok()) return s;
    }
    l.set_picked(l.picked() + std::max<int64_t>(0, rest));
    l.set_shipped(l.picked());
    if (auto s = tx.rights().LocalLeave(tx, l.sku(), l.shipped()); !s.ok()) return s;
  }
  if (auto s = ReleaseRest(tx, &r); !s.ok()) return s;
  if (auto cs = Commit(tx, r, "shipped", ""); !cs.ok()) return cs;
  return r;
}

}  // namespace

bool IsFulfilmentOp(const v1::Operation& op) {
  switch (op.op_case()) {
    case v1::Operation::kWave:
    case v1::Operation::kPick:
    case v1::Operation::kShortPick:
    case v1::Operation::kPack:
    case v1::Operation::kShip:
    case v1::Operation::kLocalOrder:
    case v1::Operation::kHandOut:
      return true;
    default:
      return false;
  }
}

absl::Status Apply(LedgerTx& tx, const v1::Operation& op, v1::OperationResult* result) {
  absl::StatusOr<Record> r;
  switch (op.op_case()) {
    case v1::Operation::kWave: return CreateWave(tx, op.wave(), result->mutable_wave());
    case v1::Operation::kPick: r = Pick(tx, op.pick()); break;
    case v1::Operation::kShortPick: r = ShortPick(tx, op.short_pick()); break;
    case v1::Operation::kPack: r = Pack(tx, op.pack()); break;
    case v1::Operation::kShip: r = Ship(tx, op.ship()); break;
    case v1::Operation::kLocalOrder: r = LocalOrder(tx, op.local_order()); break;
    case v1::Operation::kHandOut: r = HandOut(tx, op.hand_out()); break;
    default: return absl::InvalidArgumentError("not a fulfilment operation");
  }
  if (!r.ok()) return r.status();
  *result->mutable_fulfilment() = std::move(r->f);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ShortForLoss(LedgerTx& tx, const std::string& sku,
                                                      int64_t units) {
  std::vector<std::pair<std::string, uint32_t>> lines;
  {
    auto q = tx.stmts().Get(
        "SELECT l.fulfilment_id, l.line_no FROM fulfilment_lines l "
        "JOIN fulfilments f ON f.fulfilment_id = l.fulfilment_id "
        "WHERE l.sku = ? AND l.reserved > l.picked AND f.local_kind = 0 AND f.status IN (?, ?) "
        "ORDER BY f.seq DESC");
    q->bind(1, sku);
    q->bind(2, static_cast<int>(v1::FULFILMENT_ACCEPTED));
    q->bind(3, static_cast<int>(v1::FULFILMENT_PICKING));
    while (q->executeStep()) {
      lines.emplace_back(q->getColumn(0).getString(), q->getColumn(1).getInt());
    }
  }
  std::vector<std::string> shorted;
  for (const auto& [id, line_no] : lines) {
    if (units <= 0) break;
    auto rec = Load(tx.stmts(), id);
    if (!rec.ok()) return rec.status();
    for (auto& l : *rec->f.mutable_lines()) {
      if (l.line_no() != line_no) continue;
      const int64_t q = std::min(units, Open(l));
      if (q <= 0) break;
      if (auto s = ShortLine(tx, &*rec, &l, q, "stock_loss"); !s.ok()) return s;
      units -= q;
      shorted.push_back(id);
      break;
    }
  }
  return shorted;
}

// ---- central's feed --------------------------------------------------------------------------

namespace {

bool StorageError(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kResourceExhausted ||
         s.code() == absl::StatusCode::kDataLoss;
}

// The release's lines, each line number once.
Record FromRelease(const v1::FulfilmentRelease& rel) {
  Record r;
  r.f.set_fulfilment_id(rel.fulfilment_id());
  r.f.set_order_id(rel.order_id());
  r.f.set_status(v1::FULFILMENT_RELEASED);
  r.f.set_channel(rel.channel());
  r.f.set_service_level(rel.service_level());
  if (rel.has_ship_to()) *r.f.mutable_ship_to() = rel.ship_to();
  std::set<uint32_t> seen;
  for (const auto& l : rel.lines()) {
    if (!seen.insert(l.line_no()).second) {
      spdlog::warn("release {}: line {} listed twice, the second is ignored",
                   rel.fulfilment_id(), l.line_no());
      continue;
    }
    auto* fl = r.f.add_lines();
    fl->set_line_no(l.line_no());
    fl->set_sku(l.sku());
    fl->set_quantity(std::max<int64_t>(0, l.quantity()));
  }
  return r;
}

absl::Status AcceptRelease(LedgerTx& tx, const v1::FulfilmentRelease& rel) {
  Record r = FromRelease(rel);
  const std::string& id = r.f.fulfilment_id();
  Create(tx, r, rel.released_hlc());
  int64_t reserved = 0;
  for (auto& l : *r.f.mutable_lines()) {
    if (l.quantity() == 0) continue;
    auto sku = tx.Sku(l.sku());
    if (!sku.ok()) {
      l.set_short_quantity(l.quantity());
      l.set_short_reason("unknown_sku");
      continue;
    }
    auto atp = tx.Atp(l.sku());
    if (!atp.ok()) return atp.status();
    const int64_t take = std::min(l.quantity(), std::max<int64_t>(0, atp->available()));
    if (take > 0) {
      if (auto s = ReserveStock(tx, l.sku(), id, take); !s.ok()) return s;
    }
    l.set_reserved(take);
    reserved += take;
    if (take < l.quantity()) {
      l.set_short_quantity(l.quantity() - take);
      // Central allocates only against its rights here, so with selling rights a release can
      // find too little stock only after a loss the node already reported ("stock_loss");
      // anything else is an oversell (the simulation counts these).
      const int64_t explained = tx.rights().LossExplains(tx, l.sku(), l.quantity() - take);
      l.set_short_reason(explained == l.quantity() - take ? "stock_loss" : "no_stock_at_release");
    }
  }
  if (auto s = Transition(&r, NodeAction::kAccept); !s.ok()) return s;
  if (auto cs = Commit(tx, r, "accepted", ""); !cs.ok()) return cs;
  if (reserved == 0) {
    // Nothing here: accepted with every line short (central re-routes them), then finished.
    if (auto s = Transition(&r, NodeAction::kCancel); !s.ok()) return s;
    if (auto cs = Commit(tx, r, "cancelled", "no stock at release"); !cs.ok()) return cs;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyRelease(LedgerTx& tx, const v1::FulfilmentRelease& rel) {
  if (auto s = CheckCode("fulfilment_id", rel.fulfilment_id()); !s.ok()) {
    spdlog::warn("release ignored: {}", std::string(s.message()));
    return absl::OkStatus();
  }
  // Known already: a duplicate, or cancelled before it arrived (then it stays cancelled).
  if (Exists(tx.stmts(), rel.fulfilment_id())) return absl::OkStatus();
  absl::Status s = tx.Savepoint([&] { return AcceptRelease(tx, rel); });
  if (s.ok() || StorageError(s)) return s;
  // Cannot happen with a well-formed release; never block the feed on it: refuse this one.
  spdlog::error("release {} refused: {}", rel.fulfilment_id(), std::string(s.message()));
  Record r = FromRelease(rel);
  Create(tx, r, rel.released_hlc());
  for (auto& l : *r.f.mutable_lines()) {
    l.set_short_quantity(l.quantity());
    l.set_short_reason("node_error");
  }
  r.f.set_status(v1::FULFILMENT_ACCEPTED);
  if (auto cs = Commit(tx, r, "accepted", ""); !cs.ok()) return cs;
  if (auto t = Transition(&r, NodeAction::kCancel); !t.ok()) return t;
  if (auto cs = Commit(tx, r, "cancelled", StrCat("node could not accept the release: ", s.message())); !cs.ok()) return cs;
  return absl::OkStatus();
}

absl::Status ApplyCancel(LedgerTx& tx, const v1::FulfilmentCancel& cancel) {
  const std::string& id = cancel.fulfilment_id();
  if (auto s = CheckCode("fulfilment_id", id); !s.ok()) {
    spdlog::warn("cancel ignored: {}", std::string(s.message()));
    return absl::OkStatus();
  }
  auto rec = Load(tx.stmts(), id);
  if (!rec.ok()) {
    if (rec.status().code() != absl::StatusCode::kNotFound) return rec.status();
    // Cancelled before its release arrived: remember it, so a later release stays cancelled.
    Record r;
    r.f.set_fulfilment_id(id);
    r.f.set_status(v1::FULFILMENT_CANCELLED);
    r.f.set_cancel_requested(true);
    Create(tx, r, 0);
    if (auto cs = Commit(tx, r, "cancelled",
           StrCat("cancelled before its release arrived",
                  cancel.reason().empty() ? "" : ": ", cancel.reason())); !cs.ok()) return cs;
    return absl::OkStatus();
  }
  Record& r = *rec;
  const bool asked_before = r.f.cancel_requested();
  r.f.set_cancel_requested(true);
  switch (orders::DecideCancel(r.f.status())) {
    case orders::CancelDecision::kAlreadyCancelled: {
      if (!asked_before) {
        auto up = tx.stmts().Get(
            "UPDATE fulfilments SET cancel_requested = 1 WHERE fulfilment_id = ?");
        up->bind(1, id);
        up->exec();
      }
      return absl::OkStatus();
    }
    case orders::CancelDecision::kRefuseShipped:
      if (asked_before) return absl::OkStatus();  // answered already
      if (auto cs = Commit(tx, r, "cancel_refused", cancel.reason()); !cs.ok()) return cs;
      return absl::OkStatus();
    case orders::CancelDecision::kCancel:
      break;
  }
  if (auto s = Transition(&r, NodeAction::kCancel); !s.ok()) return s;
  // Picked goods go back to the bins they came from.
  std::vector<std::string> left;
  for (const auto& g : PickGroups(tx, id, /*by_bin=*/true)) {
    if (g.quantity <= 0) continue;
    absl::Status s = tx.Savepoint([&] {
      return Move(tx, g.sku, kStagingBin, g.bin, g.quantity, g.lot, g.serials, id, "cancel");
    });
    if (StorageError(s)) return s;
    if (!s.ok()) {
      spdlog::error("cancel {}: {} x{} stay in {}: {}", id, g.sku, g.quantity, kStagingBin,
                    std::string(s.message()));
      left.push_back(StrCat(g.sku, " x", g.quantity));
    }
  }
  if (auto s = ReleaseRest(tx, &r); !s.ok()) return s;
  for (auto& l : *r.f.mutable_lines()) l.set_picked(0);
  std::string note = cancel.reason();
  if (!left.empty()) {
    absl::StrAppend(&note, note.empty() ? "" : "; ", "left in ", kStagingBin, ": ",
                    absl::StrJoin(left, ", "));
  }
  if (auto cs = Commit(tx, r, "cancelled", note); !cs.ok()) return cs;
  return absl::OkStatus();
}

// ---- reads -----------------------------------------------------------------------------------

absl::StatusOr<v1::FulfilmentsResponse> List(StmtCache& db, const ListFilter& filter) {
  const int64_t limit = std::clamp<uint32_t>(filter.limit == 0 ? 1000 : filter.limit, 1, 10000);
  v1::FulfilmentsResponse out;
  SQLite::Transaction snapshot(db.db());
  auto read = [&](SQLite::Statement& q) {
    while (q.executeStep()) {
      Record r;
      ReadHeader(q, &r);
      *out.add_fulfilments() = std::move(r.f);
    }
  };
  if (filter.status != v1::FULFILMENT_STATUS_UNSPECIFIED) {
    auto q = db.Get(
        "SELECT fulfilment_id, order_id, status, channel, service_level, ship_to, carrier, "
        "tracking, wave_id, cancel_requested, local_kind FROM fulfilments "
        "WHERE status = ?1 AND (?2 = '' OR wave_id = ?2) ORDER BY seq DESC LIMIT ?3");
    q->bind(1, static_cast<int>(filter.status));
    q->bind(2, filter.wave_id);
    q->bind(3, limit);
    read(*q);
  } else if (!filter.wave_id.empty()) {
    auto q = db.Get(
        "SELECT fulfilment_id, order_id, status, channel, service_level, ship_to, carrier, "
        "tracking, wave_id, cancel_requested, local_kind FROM fulfilments "
        "WHERE wave_id = ?1 ORDER BY seq DESC LIMIT ?2");
    q->bind(1, filter.wave_id);
    q->bind(2, limit);
    read(*q);
  } else {
    auto q = db.Get(
        "SELECT fulfilment_id, order_id, status, channel, service_level, ship_to, carrier, "
        "tracking, wave_id, cancel_requested, local_kind FROM fulfilments "
        "ORDER BY seq DESC LIMIT ?1");
    q->bind(1, limit);
    read(*q);
  }
  for (auto& f : *out.mutable_fulfilments()) {
    Record r;
    r.f = std::move(f);
    ReadLines(db, &r);
    ReadPackages(db, &r);
    f = std::move(r.f);
  }
  snapshot.commit();
  return out;
}

absl::StatusOr<v1::NodeFulfilment> Get(StmtCache& db, const std::string& id) {
  SQLite::Transaction snapshot(db.db());
  auto r = Load(db, id);
  if (!r.ok()) return r.status();
  snapshot.commit();
  return std::move(r->f);
}

namespace {
void ReadWaveFulfilments(StmtCache& db, v1::Wave* w) {
  auto q = db.Get("SELECT fulfilment_id FROM fulfilments WHERE wave_id = ? ORDER BY seq");
  q->bind(1, w->wave_id());
  while (q->executeStep()) w->add_fulfilment_ids(q->getColumn(0).getString());
}
}  // namespace

absl::StatusOr<v1::WavesResponse> ListWaves(StmtCache& db, uint32_t limit) {
  v1::WavesResponse out;
  SQLite::Transaction snapshot(db.db());
  {
    auto q = db.Get("SELECT wave_id FROM waves ORDER BY n DESC LIMIT ?");
    q->bind(1, static_cast<int64_t>(std::clamp<uint32_t>(limit == 0 ? 100 : limit, 1, 1000)));
    while (q->executeStep()) out.add_waves()->set_wave_id(q->getColumn(0).getString());
  }
  for (auto& w : *out.mutable_waves()) ReadWaveFulfilments(db, &w);
  snapshot.commit();
  return out;
}

absl::StatusOr<v1::Wave> GetWave(StmtCache& db, const std::string& wave_id) {
  v1::Wave w;
  SQLite::Transaction snapshot(db.db());
  {
    auto q = db.Get("SELECT 1 FROM waves WHERE wave_id = ?");
    q->bind(1, wave_id);
    if (!q->executeStep()) return absl::NotFoundError(StrCat("unknown wave '", wave_id, "'"));
  }
  w.set_wave_id(wave_id);
  ReadWaveFulfilments(db, &w);
  auto q = db.Get(
      "SELECT bin, walk_order, sku, lot, expiry, quantity, fulfilment_id, line_no, picked "
      "FROM pick_tasks WHERE wave_id = ? ORDER BY task_no");
  q->bind(1, wave_id);
  while (q->executeStep()) {
    auto* t = w.add_tasks();
    t->set_bin(q->getColumn(0).getString());
    t->set_walk_order(q->getColumn(1).getInt64());
    t->set_sku(q->getColumn(2).getString());
    t->set_lot(q->getColumn(3).getString());
    t->set_expiry(q->getColumn(4).getString());
    t->set_quantity(q->getColumn(5).getInt64());
    t->set_fulfilment_id(q->getColumn(6).getString());
    t->set_line_no(static_cast<uint32_t>(q->getColumn(7).getInt64()));
    t->set_picked(q->getColumn(8).getInt64());
  }
  snapshot.commit();
  return w;
}

absl::StatusOr<std::map<int, int64_t>> CountByStatus(StmtCache& db) {
  std::map<int, int64_t> out;
  auto q = db.Get("SELECT status, COUNT(*) FROM fulfilments GROUP BY status");
  while (q->executeStep()) out[q->getColumn(0).getInt()] = q->getColumn(1).getInt64();
  return out;
}

absl::StatusOr<std::map<std::pair<std::string, std::string>, int64_t>> LineReservations(
    StmtCache& db) {
  std::map<std::pair<std::string, std::string>, int64_t> out;
  auto q = db.Get(
      "SELECT sku, fulfilment_id, SUM(reserved) FROM fulfilment_lines "
      "GROUP BY sku, fulfilment_id");
  while (q->executeStep()) {
    out[{q->getColumn(0).getString(), q->getColumn(1).getString()}] = q->getColumn(2).getInt64();
  }
  return out;
}

uint64_t LastHlc(StmtCache& db) {
  auto q = db.Get("SELECT COALESCE(MAX(hlc), 0) FROM fulfilments");
  return q->executeStep() ? static_cast<uint64_t>(q->getColumn(0).getInt64()) : 0;
}

}  // namespace depot::node::fulfilment

namespace depot::node {

absl::Status ReserveStock(LedgerTx& tx, const std::string& sku, const std::string& reference,
                          int64_t q) {
  v1::Operation op;
  auto* r = op.mutable_reserve();
  r->set_sku(sku);
  r->set_reference(reference);
  r->set_quantity(q);
  return tx.Stock(op);
}

absl::Status ReleaseStock(LedgerTx& tx, const std::string& sku, const std::string& reference,
                          int64_t q) {
  v1::Operation op;
  auto* r = op.mutable_release();
  r->set_sku(sku);
  r->set_reference(reference);
  r->set_quantity(q);
  return tx.Stock(op);
}

}  // namespace depot::node

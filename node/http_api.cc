#include "node/http_api.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/gs1.h"
#include "common/http_json.h"
#include "common/json.h"
#include "common/order_state.h"
#include "common/request_context.h"
#include "node/counts.h"
#include "node/receiving_http.h"
#include "node/returns_http.h"
#include "node/transfers_http.h"

namespace depot::node {
namespace {

using http::Request;
using http::Responder;
using http::JsonOk;
using http::Reply;
using http::Response;
using http::Worker;

absl::StatusOr<uint64_t> QueryUint(const Request& req, std::string_view name, uint64_t dflt) {
  auto v = req.Query(name);
  if (!v || v->empty()) return dflt;
  uint64_t out = 0;
  if (!absl::SimpleAtoi(*v, &out)) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(name), " must be a non-negative integer"));
  }
  return out;
}

const google::protobuf::Message& FulfilmentOf(const v1::OperationResult& r) {
  return r.fulfilment();
}
const google::protobuf::Message& WaveOf(const v1::OperationResult& r) { return r.wave(); }
const google::protobuf::Message& RightsOf(const v1::OperationResult& r) { return r.rights(); }

// "FULFILMENT_ACCEPTED", "ACCEPTED" or "accepted"; empty = any.
absl::StatusOr<v1::FulfilmentStatus> ParseFulfilmentStatus(std::string_view text) {
  if (text.empty()) return v1::FULFILMENT_STATUS_UNSPECIFIED;
  std::string upper;
  for (char c : text) upper.push_back(static_cast<char>(std::toupper(c)));
  v1::FulfilmentStatus s;
  if ((v1::FulfilmentStatus_Parse(upper, &s) ||
       v1::FulfilmentStatus_Parse("FULFILMENT_" + upper, &s)) &&
      s != v1::FULFILMENT_STATUS_UNSPECIFIED) {
    return s;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown fulfilment status '", std::string(text),
      "' (accepted, picking, picked, packed, shipped, delivered, cancelled)"));
}

// GET /v1/scan?code=...: the parsed barcode (common/gs1.h) as JSON, with the SKUs whose GTIN
// matches. Bad codes are 400 INVALID_ARGUMENT naming what is wrong; nothing is changed either way.
http::Response ScanResponse(const Ledger& ledger, const std::optional<std::string>& code) {
  if (!code || code->empty()) {
    return http::ErrorResponse(
        absl::InvalidArgumentError("code is required: /v1/scan?code=<URL-encoded scan>"));
  }
  auto scan = gs1::ParseScan(*code);
  if (!scan.ok()) return http::ErrorResponse(scan.status());
  const std::string& key = !scan->gtin.empty() ? scan->gtin : scan->content_gtin;
  std::vector<std::string> skus;
  if (!key.empty()) {
    auto found = ledger.SkuCodesByGtin(gs1::GtinForms(key));
    if (!found.ok()) return http::ErrorResponse(found.status());
    skus = std::move(*found);
  }
  auto str = [](std::string_view name, std::string_view v) {
    return absl::StrCat("\"", std::string(name), "\":\"", http::JsonEscape(v), "\"");
  };
  std::string out = absl::StrCat(
      "{", str("kind", gs1::KindName(scan->kind)), ",", str("symbology", scan->symbology), ",",
      str("format", scan->format), ",", str("gtin", scan->gtin), ",",
      str("content_gtin", scan->content_gtin), ",", str("sscc", scan->sscc), ",",
      str("lot", scan->lot), ",", str("serial", scan->serial), ",", str("expiry", scan->expiry));
  if (scan->count) absl::StrAppend(&out, ",\"count\":", *scan->count);
  absl::StrAppend(&out, ",", str("text", scan->text), ",\"elements\":[");
  for (size_t i = 0; i < scan->elements.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", "{", str("ai", scan->elements[i].ai), ",",
                    str("value", scan->elements[i].value), "}");
  }
  absl::StrAppend(&out, "],", str("sku", skus.empty() ? "" : skus.front()), ",\"skus\":[");
  for (size_t i = 0; i < skus.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", "\"", http::JsonEscape(skus[i]), "\"");
  }
  absl::StrAppend(&out, "]}");
  http::Response r;
  r.body = std::move(out);
  return r;
}

}  // namespace

class NodeHttpApi::Impl {
 public:
  Impl(Ledger* ledger, GroupCommitter* committer, metrics::Registry* registry,
       NodeSyncEngine* sync, SyncClient* client)
      : ledger_(ledger), committer_(committer), registry_(registry), sync_(sync),
        client_(client) {
    registry_->AddCallbackGauge("depot_ledger_movements", "Movements in the node's ledger.",
                                [l = ledger_] { return static_cast<double>(l->LastSeq()); });
    registry_->AddCallbackGauge("depot_outbox_depth",
                                "Events in the outbox not yet acknowledged by central.",
                                [l = ledger_] { return static_cast<double>(l->OutboxDepth()); });
    registry_->AddCallbackGauge(
        "depot_group_commit_batches", "Transactions committed by the group committer.",
        [c = committer_] { return static_cast<double>(c->batches()); });
    registry_->AddCallbackGauge(
        "depot_group_commit_operations", "Operations committed by the group committer.",
        [c = committer_] { return static_cast<double>(c->operations()); });
    if (sync_ != nullptr) {
      registry_->AddCallbackGauge(
          "depot_sync_connected", "1 while a sync stream to central is open and welcomed.",
          [e = sync_] { return e->Status().connected ? 1.0 : 0.0; });
      registry_->AddCallbackGauge(
          "depot_sync_acked_seq", "Central's acknowledged mark of this node's events.",
          [e = sync_] { return static_cast<double>(e->Status().acked_seq); });
      registry_->AddCallbackGauge(
          "depot_sync_lag_events", "Events written here that central has not acknowledged.",
          [e = sync_] {
            const NodeSyncStatus s = e->Status();
            return static_cast<double>(s.last_event_seq > s.acked_seq
                                           ? s.last_event_seq - s.acked_seq
                                           : 0);
          });
    }
    // Fulfilments at this node by status (one indexed COUNT per scrape).
    for (auto status : {v1::FULFILMENT_ACCEPTED, v1::FULFILMENT_PICKING, v1::FULFILMENT_PICKED,
                        v1::FULFILMENT_PACKED, v1::FULFILMENT_SHIPPED, v1::FULFILMENT_CANCELLED}) {
      const std::string name = orders::StatusName(status);
      registry_->AddCallbackGauge(
          absl::StrCat("depot_fulfilments_", name),
          absl::StrCat("Fulfilments at this node in status ", name, "."),
          [l = ledger_, status]() -> double {
            auto counts = l->FulfilmentCounts();
            if (!counts.ok()) throw std::runtime_error(std::string(counts.status().message()));
            auto it = counts->find(status);
            return it == counts->end() ? 0.0 : static_cast<double>(it->second);
          });
    }
    if (client_ != nullptr) {
      registry_->AddCallbackGauge(
          "depot_sync_connect_attempts", "Sync streams opened to central since start.",
          [c = client_] { return static_cast<double>(c->Status().attempts); });
    }
  }

  void Handle(Request&& req, Responder respond);

 private:
  Responder Measured(const std::string& route, Responder respond) {
    return http::Measured(registry_, route, std::move(respond));
  }

  // What a write answers: the whole OperationResult, or a part of it (fulfilment operations
  // answer the NodeFulfilment or Wave itself).
  using Answer = const google::protobuf::Message& (*)(const v1::OperationResult&);

  template <typename Msg>
  void Write(const Request& req, Responder respond,
             void (*set)(v1::Operation*, Msg&&), Answer answer = nullptr) {
    auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
    if (!ctx.ok()) return respond(http::ErrorResponse(ctx.status()));
    Msg msg;
    if (auto s = JsonToMessage(req.body, &msg); !s.ok()) return respond(http::ErrorResponse(s));
    v1::Operation op;
    set(&op, std::move(msg));
    committer_->Submit(std::move(*ctx), std::move(op),
                       [client = client_, answer,
                        respond = std::move(respond)](absl::StatusOr<v1::OperationResult> r) {
                         if (!r.ok()) return respond(http::ErrorResponse(r.status()));
                         if (client != nullptr && !r->replayed()) client->Notify();
                         const int code = r->replayed() ? 200 : 201;
                         respond(answer != nullptr ? JsonOk(answer(*r), code) : JsonOk(*r, code));
                       });
  }

  void Import(const Request& req, Responder respond, bool skus) {
    auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
    if (!ctx.ok()) return respond(http::ErrorResponse(ctx.status()));
    worker_.Post([this, body = req.body, skus, respond = std::move(respond)] {
      auto n = skus ? ledger_->ImportSkus(body) : ledger_->ImportBins(body);
      if (!n.ok()) return respond(http::ErrorResponse(n.status()));
      v1::ImportResponse out;
      out.set_rows(*n);
      respond(JsonOk(out));
    });
  }

  // Cycle counts (node/counts.h): /v1/counts[/generate|/kpi|/{id}[/start|/submit|/approve|
  // /reject]]. Counters get the blind view; ?view=supervisor (and approve/reject) the full one.
  void Counts(const Request& req, Responder respond);

  v1::SyncState Sync() const {
    v1::SyncState out;
    if (sync_ == nullptr) return out;
    const NodeSyncStatus s = sync_->Status();
    out.set_configured(true);
    out.set_connected(s.connected);
    out.set_acked_seq(s.acked_seq);
    out.set_sent_seq(s.sent_seq);
    out.set_last_event_seq(s.last_event_seq);
    out.set_outbox_depth(s.outbox_depth);
    out.set_feed_applied(s.feed_applied);
    out.set_last_ack_ms(s.last_ack_ms);
    out.set_last_error(s.last_error);
    if (client_ != nullptr) {
      const SyncClientStatus c = client_->Status();
      out.set_central(c.central);
      out.set_attempts(c.attempts);
      out.set_welcomes(c.welcomes);
      if (out.last_error().empty()) out.set_last_error(c.last_error);
    }
    return out;
  }

  Ledger* ledger_;
  GroupCommitter* committer_;
  metrics::Registry* registry_;
  NodeSyncEngine* sync_;
  SyncClient* client_;
  Worker worker_;
};

void NodeHttpApi::Impl::Handle(Request&& req, Responder respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  auto not_allowed = [&](Responder& r) {
    r(http::ErrorResponse(405, "METHOD_NOT_ALLOWED",
                          absl::StrCat(m, " is not allowed on ", p)));
  };
  auto route = [&](std::string_view, std::initializer_list<std::string_view> methods) {
    for (auto allowed : methods) {
      if (m == allowed) return true;
    }
    return false;
  };

  if (http::ServeHealthAndMetrics(req, registry_, respond)) return;

  struct WriteRoute {
    const char* path;
    void (*dispatch)(Impl*, const Request&, Responder);
  };
  static const WriteRoute kWrites[] = {
      {"/v1/receipts",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::ReceiptRequest>(q, std::move(r), [](v1::Operation* o, v1::ReceiptRequest&& x) {
           *o->mutable_receipt() = std::move(x);
         });
       }},
      {"/v1/moves",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::MoveRequest>(q, std::move(r), [](v1::Operation* o, v1::MoveRequest&& x) {
           *o->mutable_move() = std::move(x);
         });
       }},
      {"/v1/adjustments",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::AdjustRequest>(q, std::move(r), [](v1::Operation* o, v1::AdjustRequest&& x) {
           *o->mutable_adjust() = std::move(x);
         });
       }},
      {"/v1/scraps",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::ScrapRequest>(q, std::move(r), [](v1::Operation* o, v1::ScrapRequest&& x) {
           *o->mutable_scrap() = std::move(x);
         });
       }},
      {"/v1/reservations/release",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::ReleaseRequest>(q, std::move(r), [](v1::Operation* o, v1::ReleaseRequest&& x) {
           *o->mutable_release() = std::move(x);
         });
       }},
      {"/v1/reservations/consume",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::ConsumeRequest>(q, std::move(r), [](v1::Operation* o, v1::ConsumeRequest&& x) {
           *o->mutable_consume() = std::move(x);
         });
       }},
      // Fulfilment (node/fulfilment.h): answer the NodeFulfilment after the change.
      {"/v1/picks",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::PickRequest>(
             q, std::move(r),
             [](v1::Operation* o, v1::PickRequest&& x) { *o->mutable_pick() = std::move(x); },
             &FulfilmentOf);
       }},
      {"/v1/picks/short",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::ShortPickRequest>(
             q, std::move(r),
             [](v1::Operation* o, v1::ShortPickRequest&& x) {
               *o->mutable_short_pick() = std::move(x);
             },
             &FulfilmentOf);
       }},
      {"/v1/packs",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::PackRequest>(
             q, std::move(r),
             [](v1::Operation* o, v1::PackRequest&& x) { *o->mutable_pack() = std::move(x); },
             &FulfilmentOf);
       }},
      {"/v1/shipments",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::ShipRequest>(
             q, std::move(r),
             [](v1::Operation* o, v1::ShipRequest&& x) { *o->mutable_ship() = std::move(x); },
             &FulfilmentOf);
       }},
      {"/v1/local-orders",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::LocalOrderRequest>(
             q, std::move(r),
             [](v1::Operation* o, v1::LocalOrderRequest&& x) {
               *o->mutable_local_order() = std::move(x);
             },
             &FulfilmentOf);
       }},
      // Selling rights: ask central for more now (answers the SKU's book).
      {"/v1/rights/request",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::RightsRequest>(
             q, std::move(r),
             [](v1::Operation* o, v1::RightsRequest&& x) {
               *o->mutable_rights_request() = std::move(x);
             },
             &RightsOf);
       }},
      {"/v1/handouts",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::HandOutRequest>(
             q, std::move(r),
             [](v1::Operation* o, v1::HandOutRequest&& x) { *o->mutable_hand_out() = std::move(x); },
             &FulfilmentOf);
       }},
      // Lots with expiry: write off expired stock (answers the OperationResult: the
      // adjustments and the counts in .expired).
      {"/v1/lots/expire",
       [](Impl* i, const Request& q, Responder r) {
         i->Write<v1::ExpireLotsRequest>(q, std::move(r),
                                         [](v1::Operation* o, v1::ExpireLotsRequest&& x) {
                                           *o->mutable_expire_lots() = std::move(x);
                                         });
       }},
  };
  for (const auto& w : kWrites) {
    if (p == w.path) {
      respond = Measured(w.path, std::move(respond));
      if (m != "POST") return not_allowed(respond);
      return w.dispatch(this, req, std::move(respond));
    }
  }

  if (p == "/v1/counts" || p.starts_with("/v1/counts/")) return Counts(req, std::move(respond));
  if (HandleReceivingHttp(ledger_, committer_, client_, registry_, req, respond)) return;
  if (HandleTransfersHttp(ledger_, committer_, client_, registry_, req, respond)) return;
  if (HandleReturnsHttp(ledger_, committer_, client_, registry_, req, respond)) return;
  if (p == "/v1/reservations") {
    respond = Measured(p, std::move(respond));
    if (m == "POST") {
      return Write<v1::ReserveRequest>(req, std::move(respond),
                                       [](v1::Operation* o, v1::ReserveRequest&& x) {
                                         *o->mutable_reserve() = std::move(x);
                                       });
    }
    if (m != "GET") return not_allowed(respond);
    return Reply(ledger_->ListReservations(req.Query("sku").value_or("")), respond);
  }
  if (p == "/v1/waves") {
    respond = Measured(p, std::move(respond));
    if (m == "POST") {
      return Write<v1::CreateWaveRequest>(
          req, std::move(respond),
          [](v1::Operation* o, v1::CreateWaveRequest&& x) { *o->mutable_wave() = std::move(x); },
          &WaveOf);
    }
    if (m != "GET") return not_allowed(respond);
    auto limit = QueryUint(req, "limit", 100);
    if (!limit.ok()) return respond(http::ErrorResponse(limit.status()));
    return Reply(ledger_->ListWaves(static_cast<uint32_t>(std::min<uint64_t>(*limit, 1000))),
                 respond);
  }
  if (p.starts_with("/v1/waves/")) {
    respond = Measured("/v1/waves/{id}", std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    return Reply(ledger_->GetWave(http::PercentDecode(p.substr(10))), respond);
  }
  if (p == "/v1/fulfilments") {
    respond = Measured(p, std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    auto status = ParseFulfilmentStatus(req.Query("status").value_or(""));
    if (!status.ok()) return respond(http::ErrorResponse(status.status()));
    auto limit = QueryUint(req, "limit", 1000);
    if (!limit.ok()) return respond(http::ErrorResponse(limit.status()));
    if (*limit < 1 || *limit > 10000) {
      return respond(http::ErrorResponse(absl::InvalidArgumentError("limit must be 1..10000")));
    }
    return Reply(ledger_->ListFulfilments(*status, req.Query("wave").value_or(""),
                                          static_cast<uint32_t>(*limit)),
                 respond);
  }
  if (p.starts_with("/v1/fulfilments/")) {
    respond = Measured("/v1/fulfilments/{id}", std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    return Reply(ledger_->GetFulfilment(http::PercentDecode(p.substr(16))), respond);
  }
  if (p == "/v1/rights") {
    respond = Measured(p, std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    return Reply(ledger_->ListRights(req.Query("sku").value_or("")), respond);
  }
  if (p == "/v1/rights/history") {
    respond = Measured(p, std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    auto limit = QueryUint(req, "limit", 100);
    if (!limit.ok()) return respond(http::ErrorResponse(limit.status()));
    if (*limit < 1 || *limit > 10000) {
      return respond(http::ErrorResponse(absl::InvalidArgumentError("limit must be 1..10000")));
    }
    return Reply(ledger_->RightsHistory(req.Query("sku").value_or(""),
                                        static_cast<uint32_t>(*limit)),
                 respond);
  }
  if (p == "/v1/stock") {
    respond = Measured(p, std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    return Reply(ledger_->GetStock(req.Query("sku").value_or(""), req.Query("bin").value_or("")),
                 respond);
  }
  if (p == "/v1/atp" || p.starts_with("/v1/atp/")) {
    respond = Measured("/v1/atp", std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    std::vector<std::string> skus;
    if (p.size() > 8) skus.push_back(http::PercentDecode(std::string_view(p).substr(8)));
    if (auto list = req.Query("skus")) {
      for (auto s : absl::StrSplit(*list, ',', absl::SkipEmpty())) skus.emplace_back(s);
    }
    if (skus.empty()) {
      return respond(http::ErrorResponse(absl::InvalidArgumentError(
          "name the SKU: /v1/atp/{sku} or /v1/atp?skus=A,B")));
    }
    if (skus.size() > 1000) {
      return respond(http::ErrorResponse(absl::InvalidArgumentError("at most 1000 SKUs")));
    }
    v1::AtpResponse out;
    for (const auto& s : skus) {
      auto atp = ledger_->GetAtp(s);
      if (!atp.ok()) return respond(http::ErrorResponse(atp.status()));
      *out.add_items() = *atp;
    }
    return respond(JsonOk(out));
  }
  if (p.starts_with("/v1/lots/")) {  // GET /v1/lots/{sku}/{lot}: a lot and its history
    respond = Measured("/v1/lots/{sku}/{lot}", std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    const std::string_view rest = std::string_view(p).substr(9);
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size() ||
        rest.find('/', slash + 1) != std::string_view::npos) {
      return respond(http::ErrorResponse(
          absl::NotFoundError(absl::StrCat("no such resource: ", p, " (/v1/lots/{sku}/{lot})"))));
    }
    auto after = QueryUint(req, "after_seq", 0);
    auto limit = QueryUint(req, "limit", 100);
    if (!after.ok()) return respond(http::ErrorResponse(after.status()));
    if (!limit.ok()) return respond(http::ErrorResponse(limit.status()));
    if (*limit < 1 || *limit > 1000) {
      return respond(http::ErrorResponse(absl::InvalidArgumentError("limit must be 1..1000")));
    }
    return Reply(ledger_->GetLot(http::PercentDecode(rest.substr(0, slash)),
                                 http::PercentDecode(rest.substr(slash + 1)), *after,
                                 static_cast<uint32_t>(*limit)),
                 respond);
  }
  if (p == "/v1/movements") {
    respond = Measured(p, std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    MovementFilter f;
    f.sku = req.Query("sku").value_or("");
    f.bin = req.Query("bin").value_or("");
    f.lot = req.Query("lot").value_or("");
    f.reference = req.Query("reference").value_or("");
    f.operator_id = req.Query("operator").value_or("");
    if (auto t = req.Query("type"); t && !t->empty()) {
      std::string upper;
      for (char c : *t) upper.push_back(static_cast<char>(std::toupper(c)));
      v1::MovementType type;
      if (!v1::MovementType_Parse(upper, &type) || type == v1::MOVEMENT_TYPE_UNSPECIFIED) {
        return respond(http::ErrorResponse(absl::InvalidArgumentError(absl::StrCat(
            "unknown movement type '", *t,
            "' (receipt, move, adjustment, scrap, reserve, release, consume)"))));
      }
      f.type = type;
    }
    auto after = QueryUint(req, "after_seq", 0);
    auto limit = QueryUint(req, "limit", 100);
    if (!after.ok()) return respond(http::ErrorResponse(after.status()));
    if (!limit.ok()) return respond(http::ErrorResponse(limit.status()));
    if (*limit < 1 || *limit > 1000) {
      return respond(http::ErrorResponse(absl::InvalidArgumentError("limit must be 1..1000")));
    }
    f.after_seq = *after;
    f.limit = static_cast<uint32_t>(*limit);
    return Reply(ledger_->ListMovements(f), respond);
  }
  if (p == "/v1/skus" || p.starts_with("/v1/skus/")) {
    respond = Measured("/v1/skus", std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    if (p.size() > 9) return Reply(ledger_->GetSku(http::PercentDecode(p.substr(9))), respond);
    auto limit = QueryUint(req, "limit", 100);
    if (!limit.ok()) return respond(http::ErrorResponse(limit.status()));
    return Reply(ledger_->ListSkus(req.Query("after").value_or(""),
                                   static_cast<uint32_t>(std::min<uint64_t>(*limit, 1000))),
                 respond);
  }
  if (p == "/v1/bins") {
    respond = Measured(p, std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    return Reply(ledger_->ListBins(), respond);
  }
  if (p == "/v1/import/skus" || p == "/v1/import/bins") {
    respond = Measured(p, std::move(respond));
    if (!route(p, {"POST"})) return not_allowed(respond);
    return Import(req, std::move(respond), p == "/v1/import/skus");
  }
  if (p == "/v1/verify") {
    respond = Measured(p, std::move(respond));
    if (!route(p, {"GET", "POST"})) return not_allowed(respond);
    worker_.Post([this, respond = std::move(respond)]() mutable {
      Reply(ledger_->Verify(), respond);
    });
    return;
  }
  if (p == "/v1/scan") {
    respond = Measured(p, std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    return respond(ScanResponse(*ledger_, req.Query("code")));
  }
  if (p == "/v1/sync") {
    respond = Measured(p, std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    return respond(JsonOk(Sync()));
  }
  if (p == "/v1/status") {
    respond = Measured(p, std::move(respond));
    if (!route(p, {"GET"})) return not_allowed(respond);
    v1::NodeStatus s = ledger_->Status();
    s.set_version(DEPOT_VERSION);
    if (auto counts = ledger_->FulfilmentCounts(); counts.ok()) {
      for (auto [status, n] : *counts) {
        if (!orders::IsFinal(static_cast<v1::FulfilmentStatus>(status))) {
          s.set_open_fulfilments(s.open_fulfilments() + n);
        }
      }
    }
    *s.mutable_sync() = Sync();
    return respond(JsonOk(s));
  }
  respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
}

void NodeHttpApi::Impl::Counts(const Request& req, Responder respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  const std::string view = req.Query("view").value_or("");
  if (view != "" && view != "counter" && view != "supervisor") {
    return respond(http::ErrorResponse(
        absl::InvalidArgumentError("view must be counter (the default) or supervisor")));
  }
  const bool supervisor = view == "supervisor";
  auto not_allowed = [&](Responder& r) {
    r(http::ErrorResponse(405, "METHOD_NOT_ALLOWED", absl::StrCat(m, " is not allowed on ", p)));
  };
  auto blind = [](v1::CountTask t, bool full) {
    if (!full) counts::Blind(&t);
    return t;
  };
  // A count write: body into Msg (count_id from the path), through the group committer.
  auto write = [&]<typename Msg>(Msg msg, void (*set)(v1::Operation*, Msg&&), bool full) {
    auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
    if (!ctx.ok()) return respond(http::ErrorResponse(ctx.status()));
    v1::Operation op;
    set(&op, std::move(msg));
    committer_->Submit(std::move(*ctx), std::move(op),
                       [client = client_, full, blind,
                        respond = std::move(respond)](absl::StatusOr<v1::OperationResult> r) {
                         if (!r.ok()) return respond(http::ErrorResponse(r.status()));
                         if (client != nullptr && !r->replayed()) client->Notify();
                         const int code = r->replayed() ? 200 : 201;
                         if (r->has_count_generation()) {
                           v1::GenerateCountsResult g = r->count_generation();
                           for (auto& t : *g.mutable_counts()) t = blind(std::move(t), full);
                           return respond(JsonOk(g, code));
                         }
                         respond(JsonOk(blind(r->count(), full), code));
                       });
  };
  auto parse = [&]<typename Msg>(Msg* msg) -> bool {
    if (auto s = JsonToMessage(req.body, msg); !s.ok()) {
      respond(http::ErrorResponse(s));
      return false;
    }
    return true;
  };

  if (p == "/v1/counts") {
    respond = Measured(p, std::move(respond));
    if (m == "POST") {
      v1::CreateCountRequest msg;
      if (!parse(&msg)) return;
      return write(std::move(msg), +[](v1::Operation* o, v1::CreateCountRequest&& x) {
        *o->mutable_count_create() = std::move(x);
      }, supervisor);
    }
    if (m != "GET") return not_allowed(respond);
    v1::CountStatus status = v1::COUNT_STATUS_UNSPECIFIED;
    if (auto t = req.Query("status"); t && !t->empty()) {
      std::string upper;
      for (char c : *t) upper.push_back(static_cast<char>(std::toupper(c)));
      if ((!v1::CountStatus_Parse(upper, &status) &&
           !v1::CountStatus_Parse("COUNT_" + upper, &status)) ||
          status == v1::COUNT_STATUS_UNSPECIFIED) {
        return respond(http::ErrorResponse(absl::InvalidArgumentError(
            absl::StrCat("unknown count status '", *t, "' (open, pending_approval, done)"))));
      }
    }
    auto limit = QueryUint(req, "limit", 100);
    if (!limit.ok()) return respond(http::ErrorResponse(limit.status()));
    if (*limit < 1 || *limit > 10000) {
      return respond(http::ErrorResponse(absl::InvalidArgumentError("limit must be 1..10000")));
    }
    auto list = ledger_->ListCounts(status, static_cast<uint32_t>(*limit));
    if (!list.ok()) return respond(http::ErrorResponse(list.status()));
    for (auto& t : *list->mutable_counts()) t = blind(std::move(t), supervisor);
    return respond(JsonOk(*list));
  }
  if (p == "/v1/counts/generate") {
    respond = Measured(p, std::move(respond));
    if (m != "POST") return not_allowed(respond);
    v1::GenerateCountsRequest msg;
    if (!parse(&msg)) return;
    return write(std::move(msg), +[](v1::Operation* o, v1::GenerateCountsRequest&& x) {
      *o->mutable_count_generate() = std::move(x);
    }, supervisor);
  }
  if (p == "/v1/counts/kpi") {
    respond = Measured(p, std::move(respond));
    if (m != "GET") return not_allowed(respond);
    auto days = QueryUint(req, "days", 0);
    if (!days.ok()) return respond(http::ErrorResponse(days.status()));
    if (*days > 3650) {
      return respond(http::ErrorResponse(absl::InvalidArgumentError("days must be 0..3650")));
    }
    return Reply(ledger_->CountKpi(static_cast<uint32_t>(*days)), respond);
  }
  // /v1/counts/{id}[/action]
  std::vector<std::string> parts = absl::StrSplit(p.substr(11), '/');
  const std::string id = http::PercentDecode(parts[0]);
  const std::string action = parts.size() > 1 ? parts[1] : "";
  if (id.empty() || parts.size() > 2) {
    return respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
  }
  if (action.empty()) {
    respond = Measured("/v1/counts/{id}", std::move(respond));
    if (m != "GET") return not_allowed(respond);
    auto t = ledger_->GetCount(id);
    if (!t.ok()) return respond(http::ErrorResponse(t.status()));
    return respond(JsonOk(blind(std::move(*t), supervisor)));
  }
  if (action != "start" && action != "submit" && action != "approve" && action != "reject") {
    return respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
  }
  respond = Measured(absl::StrCat("/v1/counts/{id}/", action), std::move(respond));
  if (m != "POST") return not_allowed(respond);
  if (action == "start") {
    v1::StartCountRequest msg;
    if (!req.body.empty() && !parse(&msg)) return;
    msg.set_count_id(id);
    return write(std::move(msg), +[](v1::Operation* o, v1::StartCountRequest&& x) {
      *o->mutable_count_start() = std::move(x);
    }, supervisor);
  }
  if (action == "submit") {
    v1::SubmitCountRequest msg;
    if (!parse(&msg)) return;
    msg.set_count_id(id);
    return write(std::move(msg), +[](v1::Operation* o, v1::SubmitCountRequest&& x) {
      *o->mutable_count_submit() = std::move(x);
    }, supervisor);
  }
  v1::ReviewCountRequest msg;
  if (!req.body.empty() && !parse(&msg)) return;
  msg.set_count_id(id);
  msg.set_approve(action == "approve");
  return write(std::move(msg), +[](v1::Operation* o, v1::ReviewCountRequest&& x) {
    *o->mutable_count_review() = std::move(x);
  }, /*full=*/true);
}

NodeHttpApi::NodeHttpApi(Ledger* ledger, GroupCommitter* committer, metrics::Registry* registry,
                         NodeSyncEngine* sync, SyncClient* client)
    : impl_(std::make_unique<Impl>(ledger, committer, registry, sync, client)) {}
NodeHttpApi::~NodeHttpApi() = default;

void NodeHttpApi::Handle(http::Request&& request, http::Responder respond) {
  impl_->Handle(std::move(request), std::move(respond));
}

}  // namespace depot::node

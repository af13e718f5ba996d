#include "central/http_api.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/http_json.h"
#include "common/json.h"
#include "common/request_context.h"

namespace depot::central {
namespace {

using http::Request;
using http::Responder;
using http::JsonOk;
using http::Reply;
using http::Response;
using http::Worker;

}  // namespace

class CentralHttpApi::Impl {
 public:
  Impl(CentralService* service, metrics::Registry* registry)
      : service_(service), registry_(registry) {
    registry_->AddCallbackGauge(
        "depot_central_events_applied_total",
        "Node events applied by central since it started.",
        [s = service_] { return static_cast<double>(s->events_applied()); });
    registry_->AddCallbackGauge("depot_central_nodes_connected",
                                "Nodes with an open, welcomed sync stream.",
                                [s = service_] { return static_cast<double>(s->ConnectedNodes()); });
  }

  void Handle(Request&& req, Responder respond);

 private:
  Responder Measured(const std::string& route, Responder respond) {
    return http::Measured(registry_, route, std::move(respond));
  }

  CentralService* service_;
  metrics::Registry* registry_;
  Worker import_worker_;  // imports: long transactions
  Worker read_worker_;    // reads of the store, which may wait behind a write transaction
};

void CentralHttpApi::Impl::Handle(Request&& req, Responder respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  auto not_allowed = [&](Responder& r) {
    r(http::ErrorResponse(405, "METHOD_NOT_ALLOWED", absl::StrCat(m, " is not allowed on ", p)));
  };

  if (http::ServeHealthAndMetrics(req, registry_, respond)) return;
  if (p == "/v1/stock") {
    respond = Measured(p, std::move(respond));
    if (m != "GET") return not_allowed(respond);
    v1::NetworkStockRequest q;
    q.set_sku(req.Query("sku").value_or(""));
    q.set_site(req.Query("site").value_or(""));
    return read_worker_.Post([this, q = std::move(q), respond = std::move(respond)]() mutable {
      Reply(service_->GetNetworkStock(q), respond);
    });
  }
  if (p == "/v1/nodes") {
    respond = Measured(p, std::move(respond));
    if (m != "GET") return not_allowed(respond);
    return read_worker_.Post([this, respond = std::move(respond)]() mutable {
      Reply(service_->ListNodes(), respond);
    });
  }
  if (p == "/v1/exceptions") {
    respond = Measured(p, std::move(respond));
    if (m != "GET") return not_allowed(respond);
    v1::ListExceptionsRequest q;
    q.set_node_id(req.Query("node_id").value_or(""));
    q.set_kind(req.Query("kind").value_or(""));
    return read_worker_.Post([this, q = std::move(q), respond = std::move(respond)]() mutable {
      Reply(service_->ListExceptions(q), respond);
    });
  }
  if (p.starts_with("/v1/import/")) {
    respond = Measured("/v1/import", std::move(respond));
    if (m != "POST") return not_allowed(respond);
    auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
    if (!ctx.ok()) return respond(http::ErrorResponse(ctx.status()));
    v1::ImportRequest q;
    q.set_kind(p.substr(sizeof("/v1/import/") - 1));
    if (q.kind() != "skus" && q.kind() != "sites" && q.kind() != "bins") {
      return respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
    }
    q.set_csv(std::move(req.body));
    return import_worker_.Post([this, q = std::move(q), respond = std::move(respond)]() mutable {
      Reply(service_->Import(q), respond);
    });
  }
  respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
}

CentralHttpApi::CentralHttpApi(CentralService* service, metrics::Registry* registry)
    : impl_(std::make_unique<Impl>(service, registry)) {}
CentralHttpApi::~CentralHttpApi() = default;

void CentralHttpApi::Handle(http::Request&& request, http::Responder respond) {
  impl_->Handle(std::move(request), std::move(respond));
}

}  // namespace depot::central

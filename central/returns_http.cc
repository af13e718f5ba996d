#include "central/returns_http.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "central/grpc_service.h"
#include "central/returns.h"
#include "common/http_json.h"
#include "common/json.h"
#include "common/request_context.h"
#include "common/returns_rules.h"

namespace depot::central {

using http::JsonOk;
using http::Reply;

class ReturnsHttp::Impl {
 public:
  Impl(CentralService* service, metrics::Registry* registry)
      : registry_(registry),
        returns_(service->store()->orders() == nullptr
                     ? nullptr
                     : std::make_unique<ReturnsService>(service->store()->orders(),
                                                        service->clock(),
                                                        [service] { service->FeedChanged(); })) {}

  bool Handle(http::Request& req, http::Responder& respond) {
    const std::string& p = req.path;
    const std::string& m = req.method;
    const bool list = p == "/v1/returns", kpi = p == "/v1/kpi/returns";
    const bool one = p.starts_with("/v1/returns/");
    if (!list && !kpi && !one) return false;
    respond = http::Measured(registry_, one ? "/v1/returns/{id}" : p, std::move(respond));
    auto not_allowed = [&] {
      respond(http::ErrorResponse(405, "METHOD_NOT_ALLOWED",
                                  absl::StrCat(m, " is not allowed on ", p)));
      return true;
    };
    if (!returns_) {
      respond(http::ErrorResponse(absl::UnimplementedError("no order store: no returns")));
      return true;
    }
    ReturnsService* svc = returns_.get();
    if (kpi) {
      if (m != "GET") return not_allowed();
      worker_.Post([svc, site = req.Query("site").value_or(""), respond = std::move(respond)] {
        Reply(svc->Kpi(site), respond);
      });
      return true;
    }
    if (one) {
      if (m != "GET") return not_allowed();
      const std::string id = http::PercentDecode(p.substr(sizeof("/v1/returns/") - 1));
      if (id.empty() || id.find('/') != std::string::npos) {
        respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
        return true;
      }
      worker_.Post([svc, id, respond = std::move(respond)] { Reply(svc->Get(id), respond); });
      return true;
    }
    if (m == "POST") {
      auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
      if (!ctx.ok()) {
        respond(http::ErrorResponse(ctx.status()));
        return true;
      }
      v1::CreateReturnRequest q;
      if (auto s = JsonToMessage(req.body, &q); !s.ok()) {
        respond(http::ErrorResponse(s));
        return true;
      }
      worker_.Post([svc, q = std::move(q), op = ctx->operator_id, respond = std::move(respond)] {
        auto r = svc->Create(q, op);
        if (!r.ok()) return respond(http::ErrorResponse(r.status()));
        respond(JsonOk(*r, 201));
      });
      return true;
    }
    if (m != "GET") return not_allowed();
    v1::ListReturnsRequest q;
    const std::string status = req.Query("status").value_or("");
    v1::ReturnStatus st = v1::RETURN_STATUS_UNSPECIFIED;
    if (!status.empty() && !returns::ParseStatus(status, &st)) {
      respond(http::ErrorResponse(absl::InvalidArgumentError(
          absl::StrCat("unknown return status '", status,
                       "' (authorised, received, disposed, refunded)"))));
      return true;
    }
    q.set_status(st);
    q.set_order_id(req.Query("order_id").value_or(""));
    q.set_site(req.Query("site").value_or(""));
    if (auto l = req.Query("limit"); l && !l->empty()) {
      uint32_t limit = 0;
      if (!absl::SimpleAtoi(*l, &limit) || limit < 1 || limit > 1000) {
        respond(http::ErrorResponse(absl::InvalidArgumentError("limit must be 1..1000")));
        return true;
      }
      q.set_limit(limit);
    }
    worker_.Post([svc, q = std::move(q), respond = std::move(respond)] {
      Reply(svc->List(q), respond);
    });
    return true;
  }

 private:
  metrics::Registry* registry_;
  std::unique_ptr<ReturnsService> returns_;
  http::Worker worker_;  // last: destroyed (joined) first
};

ReturnsHttp::ReturnsHttp(CentralService* service, metrics::Registry* registry)
    : impl_(std::make_unique<Impl>(service, registry)) {}
ReturnsHttp::~ReturnsHttp() = default;

bool ReturnsHttp::Handle(http::Request& request, http::Responder& respond) {
  return impl_->Handle(request, respond);
}

}  // namespace depot::central

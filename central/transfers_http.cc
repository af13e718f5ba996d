#include "central/transfers_http.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/transfer_status.h"
#include "common/request_context.h"

namespace depot::central {

bool HandleTransfersHttp(TransferService* service, http::Request& req, http::Responder& respond,
                         http::Worker* reads, http::Worker* writes, metrics::Registry* registry) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  if (p != "/v1/transfers" && !p.starts_with("/v1/transfers/") && p != "/v1/in-transit") {
    return false;
  }
  auto route = [&](const std::string& name) {
    respond = http::Measured(registry, name, std::move(respond));
  };
  auto not_allowed = [&] {
    respond(http::ErrorResponse(405, "METHOD_NOT_ALLOWED",
                                absl::StrCat(m, " is not allowed on ", p)));
    return true;
  };
  auto bad = [&](std::string message) {
    respond(http::ErrorResponse(absl::InvalidArgumentError(message)));
    return true;
  };
  auto unimplemented = [&] {
    respond(http::ErrorResponse(absl::UnimplementedError("no transfers at this central")));
    return true;
  };

  if (p == "/v1/in-transit") {
    route(p);
    if (m != "GET") return not_allowed();
    if (!service) return unimplemented();
    reads->Post([service, sku = req.Query("sku").value_or(""),
                 site = req.Query("site").value_or(""), respond = std::move(respond)]() mutable {
      http::Reply(service->InTransit(sku, site), respond);
    });
    return true;
  }
  if (p == "/v1/transfers") {
    route(p);
    if (!service) return unimplemented();
    if (m == "POST") {
      auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
      if (!ctx.ok()) {
        respond(http::ErrorResponse(ctx.status()));
        return true;
      }
      v1::CreateTransferRequest q;
      if (auto s = JsonToMessage(req.body, &q); !s.ok()) {
        respond(http::ErrorResponse(s));
        return true;
      }
      writes->Post([service, q = std::move(q), op = ctx->operator_id,
                    respond = std::move(respond)]() mutable {
        auto r = service->Create(q, op);
        if (!r.ok()) return respond(http::ErrorResponse(r.status()));
        respond(http::JsonOk(r->first, r->second ? 200 : 201));
      });
      return true;
    }
    if (m != "GET") return not_allowed();
    v1::ListTransfersRequest q;
    v1::TransferStatus status;
    const std::string text = req.Query("status").value_or("");
    if (!::depot::transfers::ParseTransferStatus(text, &status)) {
      return bad(absl::StrCat("status '", text,
                              "' is not a transfer status (requested, shipped or in_transit, "
                              "received, received_with_variance, cancelled)"));
    }
    q.set_status(status);
    q.set_site(req.Query("site").value_or(""));
    q.set_sku(req.Query("sku").value_or(""));
    uint32_t limit = 0;
    if (auto v = req.Query("limit"); v && !v->empty() && !absl::SimpleAtoi(*v, &limit)) {
      return bad(absl::StrCat("limit '", *v, "' is not a number"));
    }
    q.set_limit(limit);
    reads->Post([service, q = std::move(q), respond = std::move(respond)]() mutable {
      http::Reply(service->List(q), respond);
    });
    return true;
  }
  const std::string id = http::PercentDecode(std::string_view(p).substr(sizeof("/v1/transfers/") - 1));
  if (id.empty() || id.find('/') != std::string::npos) {
    respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
    return true;
  }
  route("/v1/transfers/{id}");
  if (m != "GET") return not_allowed();
  if (!service) return unimplemented();
  reads->Post([service, id, respond = std::move(respond)]() mutable {
    http::Reply(service->Get(id), respond);
  });
  return true;
}

}  // namespace depot::central

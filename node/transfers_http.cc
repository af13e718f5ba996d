#include "node/transfers_http.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_json.h"
#include "common/json.h"
#include "common/request_context.h"

namespace depot::node {

bool ParseTransferStatus(const std::string& text, v1::TransferStatus* out) {
  *out = v1::TRANSFER_STATUS_UNSPECIFIED;
  if (text.empty()) return true;
  std::string upper;
  for (char c : text) upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (upper == "IN_TRANSIT" || upper == "IN-TRANSIT") upper = "SHIPPED";
  if (v1::TransferStatus_Parse(upper, out) && *out != v1::TRANSFER_STATUS_UNSPECIFIED) return true;
  return v1::TransferStatus_Parse("TRANSFER_" + upper, out) &&
         *out != v1::TRANSFER_STATUS_UNSPECIFIED;
}

bool HandleTransfersHttp(Ledger* ledger, GroupCommitter* committer, SyncClient* client,
                         metrics::Registry* registry, http::Request& req,
                         http::Responder& respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  if (p != "/v1/transfers" && !p.starts_with("/v1/transfers/")) return false;
  auto measured = [&](const std::string& route) {
    respond = http::Measured(registry, route, std::move(respond));
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
  // A write through the group committer: answers the transfer after it.
  auto write = [&](v1::Operation op) {
    auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
    if (!ctx.ok()) {
      respond(http::ErrorResponse(ctx.status()));
      return true;
    }
    committer->Submit(std::move(*ctx), std::move(op),
                      [client, respond = std::move(respond)](
                          absl::StatusOr<v1::OperationResult> res) {
                        if (!res.ok()) return respond(http::ErrorResponse(res.status()));
                        if (client != nullptr && !res->replayed()) client->Notify();
                        respond(http::JsonOk(res->transfer(), res->replayed() ? 200 : 201));
                      });
    return true;
  };
  auto parse = [&](google::protobuf::Message* msg) {
    if (req.body.empty()) return true;
    if (auto s = JsonToMessage(req.body, msg); !s.ok()) {
      respond(http::ErrorResponse(s));
      return false;
    }
    return true;
  };

  if (p == "/v1/transfers") {
    measured(p);
    if (m == "POST") {
      v1::Operation op;
      if (!parse(op.mutable_transfer_create())) return true;
      return write(std::move(op));
    }
    if (m != "GET") return not_allowed();
    v1::ListTransfersRequest q;
    v1::TransferStatus status;
    const std::string text = req.Query("status").value_or("");
    if (!ParseTransferStatus(text, &status)) {
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
    http::Reply(ledger->ListTransfers(q), respond);
    return true;
  }
  std::string_view rest = std::string_view(p).substr(sizeof("/v1/transfers/") - 1);
  std::string action;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    action = std::string(rest.substr(slash + 1));
    rest = rest.substr(0, slash);
  }
  const std::string id = http::PercentDecode(rest);
  if (id.empty() || (!action.empty() && action != "ship" && action != "cancel" &&
                     action != "receive")) {
    respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
    return true;
  }
  if (action.empty()) {
    measured("/v1/transfers/{id}");
    if (m != "GET") return not_allowed();
    http::Reply(ledger->GetTransfer(id), respond);
    return true;
  }
  measured(absl::StrCat("/v1/transfers/{id}/", action));
  if (m != "POST") return not_allowed();
  v1::Operation op;
  if (action == "receive") {
    if (!parse(op.mutable_transfer_receive())) return true;
    op.mutable_transfer_receive()->set_transfer_id(id);  // the path names the transfer
  } else {
    v1::ShipTransferRequest* r = op.mutable_transfer_ship();
    if (!parse(r)) return true;
    r->set_transfer_id(id);
    if (action == "cancel") r->set_cancel(true);
  }
  return write(std::move(op));
}

}  // namespace depot::node

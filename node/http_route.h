// The plumbing every route module of the node's HTTP API shares (node/receiving_http.h,
// node/transfers_http.h, node/returns_http.h): metrics, the JSON error answers, body parsing,
// paths of the form /v1/things/{id}[/{action}], and writes through the group committer.
//
// Contract: a RouteHelper wraps one request and its Responder; every answering method calls the
// responder exactly once and returns true ("handled"), so a handler can `return r.Bad(...)`.
// Parse and Limit answer only on failure (they return false then).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "depot/v1/node_api.pb.h"
#include "node/group_commit.h"
#include "node/sync_client.h"

namespace google::protobuf {
class Message;
}

namespace depot::node {

class RouteHelper {
 public:
  RouteHelper(http::Request& req, http::Responder& respond, metrics::Registry* registry)
      : req_(req), respond_(respond), registry_(registry) {}

  // Counts and times the answer under `route` (a template such as "/v1/returns/{id}").
  void Measure(const std::string& route);

  bool NotAllowed();                   // 405 naming the method and path
  bool NoRoute();                      // 404 "no route for METHOD PATH"
  bool Bad(std::string_view message);  // 400 INVALID_ARGUMENT
  bool Error(const absl::Status& status);

  // Parses the JSON body into msg (an empty body leaves it empty). false after answering 400.
  bool Parse(google::protobuf::Message* msg);
  // The `limit` query parameter when present. false after answering 400.
  bool Limit(uint32_t* limit);

  // Splits the path after `prefix` ("/v1/returns/") into the percent-decoded id and the action
  // after the next '/' ("" when none).
  void IdAndAction(std::string_view prefix, std::string* id, std::string* action) const;

  // Submits op through the group committer as the operator named by the request header, then
  // answers answer(result) with 201 (200 when a request_id was replayed) and wakes the sync
  // client (may be nullptr) after a commit that wrote something.
  using Answer = std::function<const google::protobuf::Message&(const v1::OperationResult&)>;
  bool Write(GroupCommitter* committer, SyncClient* client, v1::Operation op, Answer answer);

 private:
  http::Request& req_;
  http::Responder& respond_;
  metrics::Registry* registry_;
};

}  // namespace depot::node

// The node's local JSON-over-HTTP API: a thin adapter that turns requests into ledger calls.
// Writes go through the group committer; reads go straight to the ledger's read connections;
// slow administrative calls (verify, imports) run on a worker thread, never on an I/O thread.
// Routes are listed in docs/API.md. With sync to central configured, GET /v1/sync reports the
// sync state and /metrics adds depot_sync_* gauges.
#pragma once

#include <memory>

#include "common/http_server.h"
#include "common/metrics.h"
#include "node/group_commit.h"
#include "node/ledger.h"
#include "node/node_sync.h"
#include "node/sync_client.h"

namespace depot::node {

class NodeHttpApi {
 public:
  // All pointers must outlive this object. sync and client are nullptr when the node runs
  // without central; with a client, every successful write calls client->Notify() so the event
  // leaves for central at once.
  NodeHttpApi(Ledger* ledger, GroupCommitter* committer, metrics::Registry* registry,
              NodeSyncEngine* sync = nullptr, SyncClient* client = nullptr);
  ~NodeHttpApi();

  // http::Handler: thread-safe.
  void Handle(http::Request&& request, http::Responder respond);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace depot::node

// The central side of node <-> central sync (docs/SYNC.md): a pure message handler over the
// CentralStore. A transport (central/grpc_service.*, or the simulation) calls Open() with the
// node's Hello when a stream starts, Handle() for each further message, PumpFeed() when the feed
// may have grown, and Close() when the stream ends, and sends the CentralMessages produced.
//
// Contract:
// - An event is applied only when its seq is the node's mark + 1 (in the same transaction as
//   its effects and the new mark); duplicates are dropped; events after a gap are held back in
//   memory (bounded) until the gap fills. Every batch is answered with the current mark; when
//   it carried rights events (Event.rights), the feed is pumped right after the ack, so central's
//   answer to a rights request goes out at once.
// - Hello from an unregistered node: NotFound; from a retired (stale) epoch, a database behind
//   central's mark, or an epoch change without restore information: FailedPrecondition. Each
//   refusal adds an entry to the exception list. A restore (new epoch naming the current one as
//   previous) is accepted; events the restore lost are reversed out of the mirror and reported.
// - Thread-safe; many nodes may be connected at once, one stream per node (a newer Open for the
//   same node replaces the older session).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "central/store.h"
#include "common/clock.h"

namespace depot::central {

struct CentralSyncOptions {
  uint32_t feed_batch = 500;
  uint32_t hold_back_limit = 100000;   // events beyond the mark held after a gap, per node
  int64_t clock_ahead_ms = 60000;      // an event HLC further ahead than this is flagged
};

struct SessionInfo {
  bool connected = false;
  int64_t last_seen_ms = 0;
  uint64_t reported_outbox_depth = 0;
};

class CentralSyncEngine {
 public:
  CentralSyncEngine(CentralStore* store, const Clock* clock, CentralSyncOptions options = {});

  // Validates the Hello; on success appends Welcome (and the first feed batch) to *out and
  // returns a session id to pass to the other calls.
  absl::StatusOr<uint64_t> Open(const v1::Hello& hello, std::vector<v1::CentralMessage>* out);
  // One message after the Hello. An error means the stream must be closed.
  absl::Status Handle(uint64_t session, const v1::NodeMessage& message,
                      std::vector<v1::CentralMessage>* out);
  // Appends feed entries the node has not been sent yet.
  void PumpFeed(uint64_t session, std::vector<v1::CentralMessage>* out);
  void Close(uint64_t session);

  // Live session data per node, for the node list.
  std::map<std::string, SessionInfo> Sessions() const;
  // Nodes with an open, welcomed stream now (routing prefers them).
  std::set<std::string> OnlineNodes() const;

 private:
  struct Session {
    std::mutex mu;  // one message of a session at a time; sessions run in parallel
    bool closed = false;
    std::string node_id;
    uint64_t epoch = 0;
    uint64_t mark = 0;
    uint64_t feed_sent = 0;
    uint64_t feed_acked = 0;
    std::map<uint64_t, v1::Event> held;  // seq -> event, after a gap
  };
  absl::Status Refuse(const std::string& kind, const std::string& node_id, absl::Status status);
  absl::Status ApplyBatch(Session& s, const v1::EventBatch& batch,
                          std::vector<v1::CentralMessage>* out);
  void PumpFeedLocked(Session& s, std::vector<v1::CentralMessage>* out);

  CentralStore* store_;
  const Clock* clock_;
  const CentralSyncOptions options_;
  // mu_ guards the maps and info_ only; it is never held while a session applies events, so
  // concurrent nodes reach the store together and share its group commits.
  mutable std::mutex mu_;
  uint64_t next_session_ = 1;
  std::map<uint64_t, std::shared_ptr<Session>> sessions_;
  std::map<std::string, uint64_t> session_of_node_;
  std::map<std::string, SessionInfo> info_;
};

}  // namespace depot::central

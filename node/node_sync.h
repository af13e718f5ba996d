// The node side of node <-> central sync (docs/SYNC.md): a pure message handler over the ledger.
// It knows nothing about gRPC: a transport (node/sync_client.*, or the simulation in tests/sim)
// calls Connect() when a stream opens, Handle() for each message from central, Pump() whenever
// it may send (after local writes, after acks, on a timer), and Disconnect() when the stream ends,
// and sends the NodeMessages these produce, in order.
//
// Contract:
// - Events go up in seq order from central's mark (Welcome.applied_event_seq), at most `window`
//   unacknowledged events in flight; with no ack progress for `retransmit_after_ms` the engine
//   resends from the last ack (go-back-N), so lost, duplicated or reordered messages only cost
//   time. Acked events are trimmed from the outbox.
// - Feed entries from central are applied in seq order, exactly once (Ledger::ApplyFeed); the
//   engine acks its feed mark.
// - Thread-safe: all methods may be called from any thread (one internal mutex). Never blocks on
//   the network; ledger reads and writes are short.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/clock.h"
#include "depot/v1/sync.pb.h"
#include "node/ledger.h"

namespace depot::node {

struct NodeSyncOptions {
  uint32_t batch_size = 500;            // events per EventBatch
  uint32_t window = 4000;               // unacknowledged events in flight
  int64_t retransmit_after_ms = 2000;   // no ack progress for this long: resend from the ack
  int64_t heartbeat_every_ms = 1000;    // send a heartbeat when idle this long
};

struct NodeSyncStatus {
  bool connected = false;       // a stream is open and central welcomed us
  uint64_t acked_seq = 0;       // central's mark as last acknowledged
  uint64_t sent_seq = 0;        // highest event seq sent on this stream
  uint64_t last_event_seq = 0;  // newest event in the outbox
  uint64_t outbox_depth = 0;
  uint64_t feed_applied = 0;    // our mark of central's feed
  int64_t last_ack_ms = 0;      // wall clock of the last ack, 0 = never
  std::string last_error;       // why the last stream ended or was refused
};

class NodeSyncEngine {
 public:
  // ledger and clock must outlive the engine.
  NodeSyncEngine(Ledger* ledger, const Clock* clock, NodeSyncOptions options = {});

  // A stream opened: forget in-flight state and return the Hello to send first.
  v1::NodeMessage Connect();
  // One message from central. Appends what to send to *out. An error means the stream must be
  // closed (protocol violation or storage failure); the transport reconnects with backoff.
  absl::Status Handle(const v1::CentralMessage& message, std::vector<v1::NodeMessage>* out);
  // Appends event batches the window allows, retransmissions and heartbeats that are due.
  void Pump(std::vector<v1::NodeMessage>* out);
  // The stream ended (error text is kept for status).
  void Disconnect(const std::string& why);

  NodeSyncStatus Status() const;

 private:
  void PumpLocked(std::vector<v1::NodeMessage>* out);
  absl::Status AckLocked(uint64_t mark, int64_t now, std::vector<v1::NodeMessage>* out);

  Ledger* ledger_;
  const Clock* clock_;
  const NodeSyncOptions options_;
  mutable std::mutex mu_;
  bool welcomed_ = false;
  uint64_t acked_ = 0;
  uint64_t sent_ = 0;
  int64_t last_progress_ms_ = 0;
  int64_t last_sent_ms_ = 0;
  int64_t last_ack_ms_ = 0;
  std::string last_error_;
};

}  // namespace depot::node

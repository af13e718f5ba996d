// The node's sync transport: one gRPC bidirectional stream to central's NodeSync.Sync, driven by
// the NodeSyncEngine (node/node_sync.h), which decides what to send. This class only moves
// messages and reconnects.
//
// Contract:
// - Start() launches a background thread that connects, sends the engine's Hello, then runs a
//   reader (each message from central goes to engine->Handle, its answers are sent) and a writer
//   (engine->Pump every pump_every_ms and at once after Notify()). Only the writer writes, in the
//   order the engine produced the messages.
// - Any stream error, refusal by central, engine error or silence from central longer than
//   silence_timeout_ms ends the stream: engine->Disconnect(reason), then a reconnect after an
//   exponential backoff with jitter (initial_backoff_ms doubling up to max_backoff_ms, +-jitter).
//   The backoff restarts from initial_backoff_ms after a stream that central welcomed and jumps
//   to max_backoff_ms after central refused the Hello (unknown node, stale epoch, ...).
// - Never blocks local operations: Notify() is one atomic exchange in the common case and at
//   most a brief uncontended lock; network waits happen only on the client's own threads.
// - Thread-safe. Stop() (or destruction) ends the stream and joins the thread; engine must
//   outlive the client.
//
// gRPC is an implementation detail of sync_client.cc and is not included by this header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "node/node_sync.h"

namespace depot::node {

struct SyncClientOptions {
  int64_t initial_backoff_ms = 100;
  int64_t max_backoff_ms = 5000;
  double jitter = 0.2;                 // each wait is backoff * (1 +- jitter), uniformly
  int64_t pump_every_ms = 20;          // the writer pumps at least this often
  int64_t silence_timeout_ms = 15000;  // nothing from central this long: reconnect
  int64_t keepalive_ms = 10000;        // HTTP/2 pings to detect dead connections
};

struct SyncClientStatus {
  std::string central;        // the address dialled
  bool stream_open = false;   // a stream is open (welcomed or still waiting for the Welcome)
  uint64_t attempts = 0;      // streams opened since Start()
  uint64_t welcomes = 0;      // streams central welcomed since Start()
  uint64_t failures = 0;      // consecutive failed attempts (0 while connected)
  std::string last_error;     // why the last stream ended or was refused; "" before any
};

class SyncClient {
 public:
  // central_address: "host:port" (any gRPC target).
  SyncClient(NodeSyncEngine* engine, std::string central_address, SyncClientOptions options = {});
  ~SyncClient();  // Stop()
  SyncClient(const SyncClient&) = delete;
  SyncClient& operator=(const SyncClient&) = delete;

  // Starts the background thread. Idempotent.
  void Start();
  // Ends the stream (central sees a cancel) and joins the thread. Idempotent.
  void Stop();
  // New events may be in the outbox: pump now instead of at the next tick. Cheap, never blocks
  // on the network, callable from any thread (e.g. a commit completion callback).
  void Notify();

  SyncClientStatus Status() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace depot::node

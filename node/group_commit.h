// Group commit: operations submitted concurrently (e.g. by many HTTP clients) are applied in
// shared transactions by one writer thread, so one fsync covers many operations. No callback runs
// before the transaction holding its operation has committed. Callbacks run on a completion
// thread, in submission order, so answering (JSON, sockets) never delays the next transaction.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "node/ledger.h"

namespace depot::node {

class GroupCommitter {
 public:
  using Done = std::function<void(absl::StatusOr<v1::OperationResult>)>;

  // ledger must outlive the committer. max_batch bounds one transaction.
  explicit GroupCommitter(Ledger* ledger, size_t max_batch = 1024);
  ~GroupCommitter();  // applies what is queued, then stops

  // Queues an operation; done is called exactly once, on the completion thread, after commit (or
  // with the operation's error). After Stop() it is called at once with Unavailable.
  void Submit(RequestContext context, v1::Operation operation, Done done);
  void Stop();

  uint64_t batches() const { return batches_; }
  uint64_t operations() const { return operations_; }

 private:
  struct Item {
    RequestContext context;
    v1::Operation operation;
    Done done;
  };
  void Run();
  void Complete();
  struct Finished {
    Done done;
    absl::StatusOr<v1::OperationResult> result;
  };

  Ledger* ledger_;
  const size_t max_batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  std::atomic<uint64_t> batches_{0}, operations_{0};
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::deque<Finished> finished_;
  bool writer_done_ = false;
  std::thread thread_;
  std::thread completion_thread_;
};

}  // namespace depot::node

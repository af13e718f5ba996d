#include "node/group_commit.h"

#include <vector>

namespace depot::node {

GroupCommitter::GroupCommitter(Ledger* ledger, size_t max_batch)
    : ledger_(ledger), max_batch_(max_batch), thread_([this] { Run(); }) {}

GroupCommitter::~GroupCommitter() { Stop(); }

void GroupCommitter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GroupCommitter::Submit(RequestContext context, v1::Operation operation, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      queue_.push_back(Item{std::move(context), std::move(operation), std::move(done)});
      if (queue_.size() == 1) cv_.notify_one();
      return;
    }
  }
  done(absl::UnavailableError("node is shutting down"));
}

void GroupCommitter::Run() {
  std::vector<Item> batch;
  std::vector<WriteItem> items;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    items.clear();
    for (const Item& it : batch) items.push_back(WriteItem{&it.context, &it.operation});
    auto results = ledger_->ApplyBatch(items);
    batches_.fetch_add(1, std::memory_order_relaxed);
    operations_.fetch_add(batch.size(), std::memory_order_relaxed);
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
    batch.clear();
  }
}

}  // namespace depot::node

#include "node/group_commit.h"

#include <vector>

namespace depot::node {

GroupCommitter::GroupCommitter(Ledger* ledger, size_t max_batch)
    : ledger_(ledger),
      max_batch_(max_batch),
      thread_([this] { Run(); }),
      completion_thread_([this] { Complete(); }) {}

GroupCommitter::~GroupCommitter() { Stop(); }

void GroupCommitter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    writer_done_ = true;
  }
  done_cv_.notify_all();
  if (completion_thread_.joinable()) completion_thread_.join();
}

void GroupCommitter::Complete() {
  std::deque<Finished> mine;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(done_mu_);
      done_cv_.wait(lock, [&] { return writer_done_ || !finished_.empty(); });
      if (finished_.empty()) return;  // writer stopped and everything answered
      mine.swap(finished_);
    }
    for (auto& f : mine) f.done(std::move(f.result));
    mine.clear();
  }
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
    {
      std::lock_guard<std::mutex> lock(done_mu_);
      for (size_t i = 0; i < batch.size(); ++i) {
        finished_.push_back(Finished{std::move(batch[i].done), std::move(results[i])});
      }
    }
    done_cv_.notify_one();
    batch.clear();
  }
}

}  // namespace depot::node

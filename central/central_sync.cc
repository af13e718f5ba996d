#include "central/central_sync.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace depot::central {

using absl::StrCat;

CentralSyncEngine::CentralSyncEngine(CentralStore* store, const Clock* clock,
                                     CentralSyncOptions options)
    : store_(store), clock_(clock), options_(options) {}

absl::Status CentralSyncEngine::Refuse(const std::string& kind, const std::string& node_id,
                                       absl::Status status) {
  (void)store_->AddException(kind, node_id, std::string(status.message()),
                             clock_->NowMicros() / 1000);
  return status;
}

absl::StatusOr<uint64_t> CentralSyncEngine::Open(const v1::Hello& hello,
                                                 std::vector<v1::CentralMessage>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string& id = hello.node_id();
  auto node = store_->GetNode(id);
  if (!node.ok()) {
    if (node.status().code() != absl::StatusCode::kNotFound) return node.status();
    return Refuse("unknown_node", id,
                  absl::NotFoundError(StrCat("unknown node '", id,
                                             "': register it as a site at central first")));
  }
  if (hello.epoch() == 0) return absl::InvalidArgumentError("hello without an epoch");
  if (hello.epoch() != node->epoch) {
    auto retired = store_->IsRetiredEpoch(id, hello.epoch());
    if (!retired.ok()) return retired.status();
    if (*retired) {
      return Refuse("stale_epoch", id,
                    absl::FailedPreconditionError(StrCat(
                        "node '", id, "' connected with epoch ", hello.epoch(),
                        ", which was replaced; this database is an old copy")));
    }
    // A restore names the epochs its history went through, newest first; find the one central
    // has now. The node's history left it at that entry's last seq.
    std::optional<uint64_t> found;
    if (hello.previous_epoch() == node->epoch) found = hello.previous_last_seq();
    for (const auto& a : hello.ancestors()) {
      if (!found && a.epoch() == node->epoch) found = a.last_seq();
    }
    if (node->epoch != 0 && !found) {
      return Refuse("unknown_epoch", id,
                    absl::FailedPreconditionError(StrCat(
                        "node '", id, "' connected with a new epoch ", hello.epoch(),
                        " that does not follow the current one (", node->epoch,
                        "); restore databases only with depot-node --restore-from")));
    }
    // First contact, or a restore from backup: the sequence continues from the backup's last
    // event; events central applied beyond it were lost by the restore.
    const uint64_t keep = node->epoch == 0 ? 0 : *found;
    auto reversed = store_->BeginEpoch(id, hello.epoch(), node->epoch == 0 ? UINT64_MAX : keep);
    if (!reversed.ok()) return reversed.status();
    if (*reversed > 0) {
      (void)store_->AddException(
          "restore_lost_events", id,
          StrCat("node '", id, "' was restored from a backup: ", *reversed,
                 " events after seq ", keep,
                 " were lost at the node and have been reversed out of the network stock"),
          clock_->NowMicros() / 1000);
    }
    node = store_->GetNode(id);
    if (!node.ok()) return node.status();
  }
  if (hello.epoch() == node->epoch && hello.acked_seq() > node->applied_seq) {
    return Refuse("central_lost_events", id,
                  absl::FailedPreconditionError(StrCat(
                      "central acknowledged events of node '", id, "' up to ", hello.acked_seq(),
                      " but has only ", node->applied_seq,
                      ": central's database was replaced or restored; those events are no "
                      "longer in the node's outbox")));
  }
  if (hello.epoch() == node->epoch && hello.last_event_seq() < node->applied_seq) {
    return Refuse("behind_central", id,
                  absl::FailedPreconditionError(StrCat(
                      "node '", id, "' has events up to ", hello.last_event_seq(),
                      " but central applied up to ", node->applied_seq,
                      " in the same epoch: the database was replaced without "
                      "depot-node --restore-from")));
  }
  // Replace an older session of the same node.
  if (auto it = session_of_node_.find(id); it != session_of_node_.end()) {
    if (auto old = sessions_.find(it->second); old != sessions_.end()) {
      std::lock_guard<std::mutex> old_lock(old->second->mu);
      old->second->closed = true;
      sessions_.erase(old);
    }
  }
  const uint64_t sid = next_session_++;
  auto session = std::make_shared<Session>();
  sessions_[sid] = session;
  Session& s = *session;
  s.node_id = id;
  s.epoch = node->epoch;
  s.mark = node->applied_seq;
  s.feed_sent = hello.feed_applied_seq();
  s.feed_acked = hello.feed_applied_seq();
  session_of_node_[id] = sid;
  auto& info = info_[id];
  info.connected = true;
  info.last_seen_ms = clock_->NowMicros() / 1000;
  info.reported_outbox_depth = hello.outbox_depth();
  if (hello.feed_applied_seq() > node->feed_acked) {
    (void)store_->AckFeed(id, hello.feed_applied_seq());
  }
  v1::CentralMessage welcome;
  welcome.mutable_welcome()->set_applied_event_seq(s.mark);
  welcome.mutable_welcome()->set_hlc(HybridLogicalClock::Pack(clock_->NowMicros() / 1000, 0));
  out->push_back(std::move(welcome));
  PumpFeedLocked(s, out);
  return sid;
}

absl::Status CentralSyncEngine::Handle(uint64_t session, const v1::NodeMessage& message,
                                       std::vector<v1::CentralMessage>* out) {
  // Lock order: mu_ is never taken while a session's mutex is held (Open and Close take mu_
  // first, then the session's), so the node's liveness is noted before locking the session.
  std::optional<uint64_t> depth;
  if (message.has_events()) depth = message.events().outbox_depth();
  if (message.has_heartbeat()) depth = message.heartbeat().outbox_depth();
  std::shared_ptr<Session> ptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(session);
    if (it != sessions_.end()) {
      ptr = it->second;
      auto& info = info_[ptr->node_id];  // node_id never changes after Open
      info.last_seen_ms = clock_->NowMicros() / 1000;
      if (depth) info.reported_outbox_depth = *depth;
    }
  }
  auto replaced = absl::FailedPreconditionError(
      "session replaced by a newer connection of this node");
  if (!ptr) return replaced;
  std::lock_guard<std::mutex> session_lock(ptr->mu);
  if (ptr->closed) return replaced;
  Session& s = *ptr;
  switch (message.body_case()) {
    case v1::NodeMessage::kEvents:
      return ApplyBatch(s, message.events(), out);
    case v1::NodeMessage::kFeedAck: {
      const uint64_t seq = message.feed_ack().applied_seq();
      if (seq > s.feed_acked) s.feed_acked = seq;
      if (seq > s.feed_sent) s.feed_sent = seq;
      auto st = store_->AckFeed(s.node_id, seq);
      if (!st.ok()) return st;
      PumpFeedLocked(s, out);
      return absl::OkStatus();
    }
    case v1::NodeMessage::kHeartbeat:
      // An idle node that has not acknowledged everything sent may have lost a feed message:
      // send again from its mark (it skips what it already has).
      if (s.feed_sent > s.feed_acked) s.feed_sent = s.feed_acked;
      PumpFeedLocked(s, out);
      return absl::OkStatus();
    case v1::NodeMessage::kHello:
      return absl::FailedPreconditionError("hello sent twice on one stream");
    default:
      return absl::InvalidArgumentError("empty message from node");
  }
}

absl::Status CentralSyncEngine::ApplyBatch(Session& s, const v1::EventBatch& batch,
                                           std::vector<v1::CentralMessage>* out) {
  std::vector<const v1::Event*> run;  // the contiguous run after the mark, borrowed from batch
  const int64_t now_ms = clock_->NowMicros() / 1000;
  for (const v1::Event& e : batch.events()) {
    if (e.node_id() != s.node_id || e.epoch() != s.epoch) {
      return absl::InvalidArgumentError(StrCat("event of ", e.node_id(), "/", e.epoch(),
                                               " on the stream of ", s.node_id, "/", s.epoch));
    }
    if (e.seq() <= s.mark) continue;  // duplicate: already applied
    if (HybridLogicalClock::Millis(e.hlc()) > now_ms + options_.clock_ahead_ms) {
      (void)store_->AddException(
          "clock_ahead", s.node_id,
          StrCat("event ", e.seq(), " has a timestamp ",
                 HybridLogicalClock::Millis(e.hlc()) - now_ms, " ms ahead of central's clock"),
          now_ms);
    }
    // The common case (in order, nothing held back) applies straight from the batch.
    if (s.held.empty() && e.seq() == s.mark + run.size() + 1) {
      run.push_back(&e);
      continue;
    }
    // Hold back at most hold_back_limit events beyond the mark; anything further is dropped
    // (the node resends it). Admitting by distance, not by buffer size, means the event at
    // mark + 1 is always accepted, so a full buffer can never block progress.
    if (e.seq() > s.mark + run.size() && e.seq() <= s.mark + options_.hold_back_limit) {
      s.held.emplace(e.seq(), e);
    }
  }
  // Extend the run with held events that continue it; later ones stay held back.
  for (auto it = s.held.begin(); it != s.held.end();) {
    if (it->first <= s.mark + run.size()) {
      it = s.held.erase(it);  // duplicate of something applied or already in the run
      continue;
    }
    if (it->first != s.mark + run.size() + 1) break;
    run.push_back(&it->second);
    ++it;
  }
  bool answered = false;  // a rights event may have put an answer into this node's feed
  if (!run.empty()) {
    auto mark = store_->ApplyEvents(s.node_id, s.epoch, run);
    if (!mark.ok()) return mark.status();
    s.mark = *mark;
    s.held.erase(s.held.begin(), s.held.upper_bound(s.mark));
    for (const v1::Event* e : run) answered = answered || e->has_rights();
  }
  v1::CentralMessage ack;
  ack.mutable_ack()->set_applied_seq(s.mark);
  out->push_back(std::move(ack));
  if (answered) PumpFeedLocked(s, out);
  return absl::OkStatus();
}

void CentralSyncEngine::PumpFeed(uint64_t session, std::vector<v1::CentralMessage>* out) {
  std::shared_ptr<Session> ptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    ptr = it->second;
  }
  std::lock_guard<std::mutex> session_lock(ptr->mu);
  if (!ptr->closed) PumpFeedLocked(*ptr, out);
}

void CentralSyncEngine::PumpFeedLocked(Session& s, std::vector<v1::CentralMessage>* out) {
  auto entries = store_->ReadFeed(s.node_id, s.feed_sent, options_.feed_batch);
  if (!entries.ok() || entries->empty()) return;
  v1::CentralMessage m;
  for (auto& e : *entries) *m.mutable_feed()->add_entries() = std::move(e);
  s.feed_sent = m.feed().entries(m.feed().entries_size() - 1).seq();
  out->push_back(std::move(m));
}

void CentralSyncEngine::Close(uint64_t session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  const std::string node = it->second->node_id;
  {
    std::lock_guard<std::mutex> session_lock(it->second->mu);
    it->second->closed = true;
  }
  sessions_.erase(it);
  if (auto n = session_of_node_.find(node); n != session_of_node_.end() && n->second == session) {
    session_of_node_.erase(n);
    info_[node].connected = false;
  }
}

std::map<std::string, SessionInfo> CentralSyncEngine::Sessions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return info_;
}

std::set<std::string> CentralSyncEngine::OnlineNodes() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::set<std::string> out;
  for (const auto& [node, session] : session_of_node_) out.insert(node);
  return out;
}

}  // namespace depot::central

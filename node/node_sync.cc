#include "node/node_sync.h"

#include "absl/strings/str_cat.h"

namespace depot::node {

NodeSyncEngine::NodeSyncEngine(Ledger* ledger, const Clock* clock, NodeSyncOptions options)
    : ledger_(ledger), clock_(clock), options_(options) {}

v1::NodeMessage NodeSyncEngine::Connect() {
  std::lock_guard<std::mutex> lock(mu_);
  welcomed_ = false;
  sent_ = 0;
  const auto id = ledger_->GetIdentity();
  v1::NodeMessage m;
  auto* h = m.mutable_hello();
  h->set_node_id(id.node_id);
  h->set_epoch(id.epoch);
  h->set_last_event_seq(ledger_->LastEventSeq());
  h->set_feed_applied_seq(ledger_->FeedMark());
  h->set_outbox_depth(ledger_->OutboxDepth());
  h->set_acked_seq(ledger_->OutboxAcked());
  h->set_hlc(ledger_->Status().hlc());
  h->set_previous_epoch(id.previous_epoch);
  h->set_previous_last_seq(id.previous_last_seq);
  for (const auto& [epoch, seq] : id.ancestors) {
    auto* a = h->add_ancestors();
    a->set_epoch(epoch);
    a->set_last_seq(seq);
  }
  return m;
}

absl::Status NodeSyncEngine::Handle(const v1::CentralMessage& message,
                                    std::vector<v1::NodeMessage>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_->NowMicros() / 1000;
  switch (message.body_case()) {
    case v1::CentralMessage::kWelcome: {
      const uint64_t mark = message.welcome().applied_event_seq();
      // A repeated Welcome on the same stream says no more than an ack.
      if (welcomed_) return AckLocked(mark, now, out);
      if (mark > ledger_->LastEventSeq()) {
        last_error_ = absl::StrCat("central has applied up to ", mark, " but this node's last event is ",
                                   ledger_->LastEventSeq());
        return absl::FailedPreconditionError(last_error_);
      }
      if (mark < ledger_->OutboxAcked()) {
        last_error_ = absl::StrCat("central has applied only up to ", mark,
                                   " but acknowledged up to ", ledger_->OutboxAcked(),
                                   " before: its database was replaced or restored");
        return absl::FailedPreconditionError(last_error_);
      }
      welcomed_ = true;
      acked_ = mark;
      sent_ = mark;
      if (auto st = ledger_->ConfirmEpoch(); !st.ok()) return st;
      last_progress_ms_ = now;
      last_ack_ms_ = now;
      ledger_->NoteAcked(mark);
      if (mark > ledger_->OutboxAcked()) {
        if (auto s = ledger_->TrimOutbox(mark); !s.ok()) return s;
      }
      last_error_.clear();
      PumpLocked(out);
      return absl::OkStatus();
    }
    case v1::CentralMessage::kAck:
      if (!welcomed_) return absl::FailedPreconditionError("ack before welcome");
      return AckLocked(message.ack().applied_seq(), now, out);
    case v1::CentralMessage::kFeed: {
      if (!welcomed_) return absl::FailedPreconditionError("feed before welcome");
      std::vector<v1::FeedEntry> entries(message.feed().entries().begin(),
                                         message.feed().entries().end());
      auto mark = ledger_->ApplyFeed(entries);
      if (!mark.ok()) return mark.status();
      v1::NodeMessage ack;
      ack.mutable_feed_ack()->set_applied_seq(*mark);
      out->push_back(std::move(ack));
      return absl::OkStatus();
    }
    case v1::CentralMessage::kHeartbeat:
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError("empty message from central");
  }
}

absl::Status NodeSyncEngine::AckLocked(uint64_t mark, int64_t now,
                                       std::vector<v1::NodeMessage>* out) {
  if (mark > ledger_->LastEventSeq()) {
    return absl::FailedPreconditionError(absl::StrCat("ack ", mark, " beyond the last event"));
  }
  last_ack_ms_ = now;
  if (mark > acked_) {  // stale or duplicated acks never move the mark back
    acked_ = mark;
    last_progress_ms_ = now;
    if (sent_ < acked_) sent_ = acked_;
    ledger_->NoteAcked(mark);
    // Trimming is a durable write: batch it (every 256 events, or when everything is acked).
    if (mark >= ledger_->OutboxAcked() + 256 || mark == ledger_->LastEventSeq()) {
      if (auto s = ledger_->TrimOutbox(mark); !s.ok()) return s;
    }
  }
  PumpLocked(out);
  return absl::OkStatus();
}

void NodeSyncEngine::Pump(std::vector<v1::NodeMessage>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  PumpLocked(out);
}

void NodeSyncEngine::PumpLocked(std::vector<v1::NodeMessage>* out) {
  if (!welcomed_) return;
  const int64_t now = clock_->NowMicros() / 1000;
  // Go-back-N: nothing acknowledged for a while although events are in flight.
  if (sent_ > acked_ && now - last_progress_ms_ >= options_.retransmit_after_ms) {
    sent_ = acked_;
    last_progress_ms_ = now;
  }
  const uint64_t last = ledger_->LastEventSeq();
  bool sent_any = false;
  while (sent_ < last && sent_ - acked_ < options_.window) {
    const uint32_t room = static_cast<uint32_t>(
        std::min<uint64_t>(options_.batch_size, options_.window - (sent_ - acked_)));
    auto events = ledger_->ReadOutbox(sent_, room);
    if (!events.ok() || events->empty()) break;
    v1::NodeMessage m;
    auto* batch = m.mutable_events();
    for (auto& e : *events) *batch->add_events() = std::move(e);
    sent_ = batch->events(batch->events_size() - 1).seq();
    batch->set_outbox_depth(last - acked_);
    out->push_back(std::move(m));
    sent_any = true;
  }
  if (sent_any) {
    last_sent_ms_ = now;
  } else if (now - last_sent_ms_ >= options_.heartbeat_every_ms) {
    v1::NodeMessage m;
    m.mutable_heartbeat()->set_hlc(ledger_->Status().hlc());
    m.mutable_heartbeat()->set_outbox_depth(ledger_->OutboxDepth());
    out->push_back(std::move(m));
    last_sent_ms_ = now;
  }
}

void NodeSyncEngine::Disconnect(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  welcomed_ = false;
  sent_ = acked_;
  if (!why.empty()) last_error_ = why;
}

NodeSyncStatus NodeSyncEngine::Status() const {
  std::lock_guard<std::mutex> lock(mu_);
  NodeSyncStatus s;
  s.connected = welcomed_;
  s.acked_seq = acked_;
  s.sent_seq = sent_;
  s.last_event_seq = ledger_->LastEventSeq();
  s.outbox_depth = ledger_->OutboxDepth();
  s.feed_applied = ledger_->FeedMark();
  s.last_ack_ms = last_ack_ms_;
  s.last_error = last_error_;
  return s;
}

}  // namespace depot::node

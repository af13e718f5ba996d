#include "node/sync_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "depot/v1/sync.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace depot::node {
namespace {

using SteadyClock = std::chrono::steady_clock;
using Stream = grpc::ClientReaderWriter<v1::NodeMessage, v1::CentralMessage>;

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

}  // namespace

class SyncClient::Impl {
 public:
  Impl(NodeSyncEngine* engine, std::string address, SyncClientOptions options)
      : engine_(engine), address_(std::move(address)), options_(options),
        rng_(std::random_device{}()) {}

  ~Impl() { Stop(); }

  void Start() {
    std::lock_guard<std::mutex> lock(mu_);
    if (thread_.joinable() || stopping_) return;
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      if (context_ != nullptr) context_->TryCancel();
    }
    Wake();
    backoff_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void Notify() {
    // Only the first notification per writer cycle takes the lock; the rest are one exchange.
    if (!poke_.exchange(true, std::memory_order_acq_rel)) Wake();
  }

  SyncClientStatus Status() const {
    std::lock_guard<std::mutex> lock(mu_);
    SyncClientStatus s = status_;
    s.central = address_;
    return s;
  }

 private:
  void Wake() {
    { std::lock_guard<std::mutex> lock(wake_mu_); }
    wake_cv_.notify_all();
  }

  bool stopping() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  // Connect, run, back off, repeat until Stop().
  void Run() {
    int64_t backoff = options_.initial_backoff_ms;
    while (!stopping()) {
      const Outcome end = RunStream();
      engine_->Disconnect(end.error);
      {
        std::lock_guard<std::mutex> lock(mu_);
        status_.stream_open = false;
        status_.last_error = end.error;
        status_.failures = end.welcomed ? 0 : status_.failures + 1;
        if (stopping_) break;
      }
      if (end.welcomed) last_logged_error_.clear();
      if (end.error != last_logged_error_) {
        spdlog::warn("sync with central {}: {}; reconnecting", address_, end.error);
        last_logged_error_ = end.error;
      } else {
        spdlog::debug("sync with central {}: {}", address_, end.error);
      }
      // A stream that worked starts the backoff over, unless our own engine failed (that tends
      // to repeat); a refusal of the Hello (unknown node, stale epoch, ...) will not change in
      // milliseconds.
      if (end.welcomed && !end.engine_error) backoff = options_.initial_backoff_ms;
      if (end.refused) backoff = options_.max_backoff_ms;
      std::uniform_real_distribution<double> jitter(1.0 - options_.jitter, 1.0 + options_.jitter);
      const auto wait = std::chrono::milliseconds(
          std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(backoff) * jitter(rng_))));
      {
        std::unique_lock<std::mutex> lock(mu_);
        backoff_cv_.wait_for(lock, wait, [&] { return stopping_; });
      }
      backoff = std::min(backoff * 2, options_.max_backoff_ms);
    }
  }

  struct Outcome {
    std::string error;          // why the stream ended
    bool welcomed = false;      // central accepted the Hello
    bool refused = false;       // central refused the Hello with a status
    bool engine_error = false;  // our engine rejected a message from central
  };

  // One stream from connect to its end.
  Outcome RunStream() {
    Outcome end;
    grpc::ChannelArguments args;
    // A fresh channel per attempt with its own subchannel, so our backoff, not gRPC's, paces
    // reconnects. gRPC's reconnect settings stay at their defaults: the minimum one is also the
    // connect timeout (20 s), which must allow for slow links.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options_.keepalive_ms));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    args.SetMaxReceiveMessageSize(64 << 20);
    auto channel = grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
    auto stub = v1::NodeSync::NewStub(channel);

    grpc::ClientContext context;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        end.error = "stopped";
        return end;
      }
      context_ = &context;
      ++status_.attempts;
      status_.stream_open = true;
    }
    reader_done_ = false;
    reader_eof_ = false;
    reader_error_.clear();
    queue_.clear();
    last_received_ms_ = SteadyMs();

    std::unique_ptr<Stream> stream = stub->Sync(&context);
    std::string error;
    bool cancel = false;
    // A failed write means the call is over (its status follows); no need to cancel.
    if (!stream->Write(engine_->Connect())) error = "cannot send the Hello";
    std::thread reader([&] { ReadLoop(stream.get(), &end.welcomed); });
    if (error.empty()) error = WriteLoop(stream.get(), &cancel);
    // When the call ended by itself, central's status waits for Finish() and cancelling would
    // replace it with CANCELLED; when we end a live stream, cancel it so the reader returns.
    if (cancel || (reader_done_ && !reader_eof_)) context.TryCancel();
    reader.join();
    grpc::Status status = stream->Finish();
    {
      std::lock_guard<std::mutex> lock(mu_);
      context_ = nullptr;
    }
    // The most specific reason first: the engine's, then central's status, then ours.
    const grpc::StatusCode code = status.error_code();
    end.refused = !end.welcomed && (code == grpc::StatusCode::NOT_FOUND ||
                                    code == grpc::StatusCode::FAILED_PRECONDITION ||
                                    code == grpc::StatusCode::INVALID_ARGUMENT ||
                                    code == grpc::StatusCode::PERMISSION_DENIED);
    if (!reader_error_.empty()) {
      end.engine_error = true;
      end.error = reader_error_;
    } else if (!status.ok() && code != grpc::StatusCode::CANCELLED) {
      end.error = absl::StrCat("central: ", status.error_message(), " (gRPC code ",
                               static_cast<int>(code), ")");
    } else if (!error.empty()) {
      end.error = error;
    } else {
      end.error = "stream closed by central";
    }
    return end;
  }

  // Reader thread: hands each message to the engine and queues its answers for the writer.
  void ReadLoop(Stream* stream, bool* welcomed) {
    v1::CentralMessage message;
    std::vector<v1::NodeMessage> out;
    bool eof = false;
    for (;;) {
      if (!stream->Read(&message)) {
        eof = true;
        break;
      }
      last_received_ms_ = SteadyMs();
      out.clear();
      {
        std::lock_guard<std::mutex> lock(queue_mu_);
        absl::Status s = engine_->Handle(message, &out);
        if (!s.ok()) {
          reader_error_ = s.ToString();
          break;
        }
        for (auto& m : out) queue_.push_back(std::move(m));
      }
      if (message.has_welcome() && !*welcomed) {
        *welcomed = true;
        std::lock_guard<std::mutex> lock(mu_);
        ++status_.welcomes;
        status_.failures = 0;
        spdlog::info("sync with central {}: welcomed, central has applied up to event {}",
                     address_, message.welcome().applied_event_seq());
      }
      Notify();
    }
    reader_eof_ = eof;
    reader_done_ = true;
    Wake();
  }

  // Writer (this thread): sends queued answers and what the engine pumps, in production order.
  // Returns why it stopped ("" when the reader ended); *cancel when the stream is still live.
  std::string WriteLoop(Stream* stream, bool* cancel) {
    std::vector<v1::NodeMessage> batch;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(wake_mu_);
        wake_cv_.wait_for(lock, std::chrono::milliseconds(options_.pump_every_ms), [&] {
          return poke_.load(std::memory_order_acquire) || reader_done_.load() || stopping_flag();
        });
      }
      poke_.store(false, std::memory_order_release);
      if (reader_done_) return "";
      if (stopping_flag()) {
        *cancel = true;
        return "stopped";
      }
      if (SteadyMs() - last_received_ms_ > options_.silence_timeout_ms) {
        *cancel = true;
        return absl::StrCat("nothing from central for ", options_.silence_timeout_ms, " ms");
      }
      batch.clear();
      {
        std::lock_guard<std::mutex> lock(queue_mu_);
        for (auto& m : queue_) batch.push_back(std::move(m));
        queue_.clear();
        engine_->Pump(&batch);
      }
      for (const auto& m : batch) {
        if (!stream->Write(m)) return "write to central failed";
      }
    }
  }

  bool stopping_flag() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  NodeSyncEngine* const engine_;
  const std::string address_;
  const SyncClientOptions options_;

  mutable std::mutex mu_;  // stopping_, context_, status_
  bool stopping_ = false;
  grpc::ClientContext* context_ = nullptr;
  SyncClientStatus status_;
  std::condition_variable backoff_cv_;  // with mu_

  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  std::atomic<bool> poke_{false};

  std::mutex queue_mu_;  // engine calls that produce output + the queue
  std::deque<v1::NodeMessage> queue_;
  std::atomic<bool> reader_done_{false};
  std::atomic<bool> reader_eof_{false};  // the reader stopped because Read() returned false
  std::string reader_error_;  // written by the reader before reader_done_
  std::atomic<int64_t> last_received_ms_{0};

  std::string last_logged_error_;  // the Run thread only
  std::mt19937_64 rng_;
  std::thread thread_;
};

SyncClient::SyncClient(NodeSyncEngine* engine, std::string central_address,
                       SyncClientOptions options)
    : impl_(std::make_unique<Impl>(engine, std::move(central_address), options)) {}
SyncClient::~SyncClient() = default;

void SyncClient::Start() { impl_->Start(); }
void SyncClient::Stop() { impl_->Stop(); }
void SyncClient::Notify() { impl_->Notify(); }
SyncClientStatus SyncClient::Status() const { return impl_->Status(); }

}  // namespace depot::node

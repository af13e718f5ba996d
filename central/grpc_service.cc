#include "central/grpc_service.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "central/central_rights.h"
#include "central/orders.h"
#include "depot/v1/central.grpc.pb.h"
#include "depot/v1/orders.grpc.pb.h"
#include "depot/v1/sync.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace depot::central {
namespace {

// absl and gRPC share the canonical code numbering, so the mapping is the identity.
grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

template <typename T, typename Msg>
grpc::Status Reply(absl::StatusOr<T> r, Msg* response) {
  if (!r.ok()) return ToGrpc(r.status());
  *response = std::move(*r);
  return grpc::Status::OK;
}

int64_t NowMs(const Clock& clock) { return clock.NowMicros() / 1000; }

using SyncStream = grpc::ServerReaderWriter<v1::CentralMessage, v1::NodeMessage>;

}  // namespace

// ---------------------------------------------------------------------------------------------
// CentralService

CentralService::CentralService(CentralStore* store, CentralSyncEngine* engine, const Clock* clock)
    : store_(store), engine_(engine), clock_(clock) {}

absl::StatusOr<v1::ImportResult> CentralService::Import(const v1::ImportRequest& request) {
  const std::string& kind = request.kind();
  if (kind != "skus" && kind != "sites" && kind != "bins" && kind != "channels" &&
      kind != "kits") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown import kind '", kind, "' (skus, sites, bins, channels or kits)"));
  }
  if (request.csv().empty()) return absl::InvalidArgumentError("the CSV is empty");
  auto rows = store_->Import(kind, request.csv());
  if (!rows.ok()) return rows.status();
  FeedChanged();
  v1::ImportResult out;
  out.set_rows(*rows);
  return out;
}

absl::StatusOr<v1::NetworkStockResponse> CentralService::GetNetworkStock(
    const v1::NetworkStockRequest& request) {
  if (request.sku().empty() && request.site().empty()) {
    return absl::InvalidArgumentError("name a sku, a site or both");
  }
  return store_->NetworkStock(request.sku(), request.site());
}

absl::StatusOr<v1::ListNodesResponse> CentralService::ListNodes() {
  auto nodes = store_->ListNodes();
  if (!nodes.ok()) return nodes.status();
  const std::map<std::string, SessionInfo> sessions = engine_->Sessions();
  const int64_t now_ms = NowMs(*clock_);
  v1::ListNodesResponse out;
  for (const NodeRecord& n : *nodes) {
    v1::NodeInfo* info = out.add_nodes();
    info->set_node_id(n.node_id);
    info->set_name(n.name);
    info->set_epoch(n.epoch);
    info->set_applied_seq(n.applied_seq);
    info->set_feed_seq(n.feed_seq);
    info->set_feed_acked(n.feed_acked);
    if (auto it = sessions.find(n.node_id); it != sessions.end()) {
      info->set_connected(it->second.connected);
      info->set_last_seen_ms(it->second.last_seen_ms);
      info->set_reported_outbox_depth(it->second.reported_outbox_depth);
    }
    // Lag: how old the oldest event central is still missing is, approximated by the age of the
    // last applied event while the node reports unsent events; 0 once it has sent everything.
    if (info->connected() && n.last_event_hlc != 0 && info->reported_outbox_depth() > 0) {
      info->set_lag_ms(
          std::max<int64_t>(0, now_ms - HybridLogicalClock::Millis(n.last_event_hlc)));
    }
  }
  return out;
}

absl::StatusOr<v1::ListExceptionsResponse> CentralService::ListExceptions(
    const v1::ListExceptionsRequest& request) {
  if (OrderStore* o = store_->orders()) return o->QueryExceptions(request);
  return store_->ListExceptions(request.node_id(), request.kind());
}

absl::StatusOr<v1::ExceptionEntry> CentralService::AssignException(
    const v1::ExceptionActionRequest& request) {
  OrderStore* o = store_->orders();
  if (!o) return absl::UnimplementedError("this store keeps no exception workflow");
  if (request.id() == 0) return absl::InvalidArgumentError("id is required");
  if (request.assignee().empty()) return absl::InvalidArgumentError("assignee is required");
  return o->AssignException(request.id(), request.assignee());
}

absl::StatusOr<v1::ExceptionEntry> CentralService::ResolveException(
    const v1::ExceptionActionRequest& request) {
  OrderStore* o = store_->orders();
  if (!o) return absl::UnimplementedError("this store keeps no exception workflow");
  if (request.id() == 0) return absl::InvalidArgumentError("id is required");
  if (request.note().empty()) {
    return absl::InvalidArgumentError("a note saying how it was resolved is required");
  }
  return o->ResolveException(request.id(), request.note(), NowMs(*clock_));
}

absl::StatusOr<v1::ListChannelsResponse> CentralService::ListChannels() {
  OrderStore* o = store_->orders();
  if (!o) return absl::UnimplementedError("this store keeps no channels");
  return o->ListChannels();
}

void CentralService::FeedChanged() {
  {
    std::lock_guard<std::mutex> lock(feed_mu_);
    ++feed_generation_;
  }
  feed_cv_.notify_all();
}

uint64_t CentralService::feed_generation() const {
  std::lock_guard<std::mutex> lock(feed_mu_);
  return feed_generation_;
}

void CentralService::WakeFeedWaiters() {
  { std::lock_guard<std::mutex> lock(feed_mu_); }  // a waiter is either waiting or sees *stop
  feed_cv_.notify_all();
}

bool CentralService::WaitForFeedChange(uint64_t* seen,
                                       std::chrono::steady_clock::time_point deadline,
                                       const std::atomic<bool>* stop) {
  std::unique_lock<std::mutex> lock(feed_mu_);
  feed_cv_.wait_until(lock, deadline,
                      [&] { return feed_generation_ != *seen || stop->load(); });
  if (feed_generation_ == *seen) return false;
  *seen = feed_generation_;
  return true;
}

int CentralService::ConnectedNodes() const {
  int n = 0;
  for (const auto& [id, s] : engine_->Sessions()) n += s.connected ? 1 : 0;
  return n;
}

// ---------------------------------------------------------------------------------------------
// gRPC services

namespace {

// One open NodeSync stream after a successful Open: serializes engine calls that produce output
// with the writes of that output, so messages leave in the order the engine produced them.
class SyncSession {
 public:
  SyncSession(grpc::ServerContext* ctx, SyncStream* stream, CentralService* service,
              HybridLogicalClock* hlc, uint64_t id, const GrpcServerOptions& options)
      : ctx_(ctx), stream_(stream), service_(service), hlc_(hlc), id_(id), options_(options) {
    last_write_ms_ = last_read_ms_ = NowMs(*service_->clock());
  }

  // Writes messages produced by Open (the caller holds no lock yet; nothing else runs).
  bool WriteInitial(const std::vector<v1::CentralMessage>& out) {
    std::lock_guard<std::mutex> lock(mu_);
    return WriteLocked(out);
  }

  // Feeds one message from the node to the engine and writes the answers. An engine error is
  // returned (the stream must end with it); a failed write ends the stream as cancelled.
  absl::Status OnMessage(const v1::NodeMessage& message, bool* write_failed) {
    std::lock_guard<std::mutex> lock(mu_);
    last_read_ms_ = NowMs(*service_->clock());
    out_.clear();
    absl::Status s = service_->engine()->Handle(id_, message, &out_);
    if (!s.ok()) return s;
    *write_failed = !WriteLocked(out_);
    return absl::OkStatus();
  }

  // Runs until Finish(): pumps the feed when it changed (and every feed_poll_ms), sends
  // heartbeats, enforces the idle timeout.
  void PumpLoop() {
    using std::chrono::milliseconds;
    using Steady = std::chrono::steady_clock;
    uint64_t seen = service_->feed_generation();
    auto next_poll = Steady::now() + milliseconds(options_.feed_poll_ms);
    while (!finished_.load()) {
      const auto tick = std::min(
          next_poll, Steady::now() + milliseconds(std::min(options_.heartbeat_every_ms,
                                                           options_.idle_timeout_ms)));
      const bool changed = service_->WaitForFeedChange(&seen, tick, &finished_);
      if (finished_.load() || ctx_->IsCancelled()) return;
      const bool poll = changed || Steady::now() >= next_poll;
      if (poll) next_poll = Steady::now() + milliseconds(options_.feed_poll_ms);
      bool ok = true;
      {
        std::lock_guard<std::mutex> lock(mu_);
        const int64_t now = NowMs(*service_->clock());
        if (now - last_read_ms_ > options_.idle_timeout_ms) {
          spdlog::warn("sync session {}: nothing from the node for {} ms; closing", id_,
                       now - last_read_ms_);
          ok = false;
        } else {
          pump_out_.clear();
          if (poll) service_->engine()->PumpFeed(id_, &pump_out_);
          if (pump_out_.empty() && now - last_write_ms_ >= options_.heartbeat_every_ms) {
            v1::CentralMessage hb;
            hb.mutable_heartbeat()->set_hlc(hlc_->Now());
            pump_out_.push_back(std::move(hb));
          }
          ok = WriteLocked(pump_out_);
        }
      }
      if (!ok) {
        ctx_->TryCancel();
        return;
      }
    }
  }

  void Finish() {
    finished_ = true;
    service_->WakeFeedWaiters();
  }

 private:
  // Writes in order; counts newly acknowledged events. Caller holds mu_.
  bool WriteLocked(const std::vector<v1::CentralMessage>& out) {
    for (const v1::CentralMessage& m : out) {
      if (m.has_welcome()) {
        ack_base_ = m.welcome().applied_event_seq();
      } else if (m.has_ack()) {
        const uint64_t acked = m.ack().applied_seq();
        if (acked > ack_base_) service_->AddEventsApplied(acked - ack_base_);
        ack_base_ = std::max(ack_base_, acked);
      }
      if (!stream_->Write(m)) return false;
      last_write_ms_ = NowMs(*service_->clock());
    }
    return true;
  }

  grpc::ServerContext* const ctx_;
  SyncStream* const stream_;
  CentralService* const service_;
  HybridLogicalClock* const hlc_;
  const uint64_t id_;
  const GrpcServerOptions options_;

  std::mutex mu_;  // engine calls that produce output + their writes
  std::vector<v1::CentralMessage> out_, pump_out_;
  int64_t last_write_ms_ = 0, last_read_ms_ = 0;
  uint64_t ack_base_ = 0;

  std::atomic<bool> finished_{false};
};

class NodeSyncService final : public v1::NodeSync::Service {
 public:
  NodeSyncService(CentralService* service, const GrpcServerOptions& options)
      : service_(service), options_(options), hlc_(*service->clock()) {}

  grpc::Status Sync(grpc::ServerContext* ctx, SyncStream* stream) override {
    v1::NodeMessage first;
    if (!stream->Read(&first)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the stream ended before a Hello");
    }
    if (!first.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a Hello");
    }
    std::vector<v1::CentralMessage> out;
    absl::StatusOr<uint64_t> id = service_->engine()->Open(first.hello(), &out);
    if (!id.ok()) {
      spdlog::warn("sync: node '{}' from {} refused: {}", first.hello().node_id(), ctx->peer(),
                   id.status().ToString());
      return ToGrpc(id.status());
    }
    spdlog::info("sync: node '{}' epoch {} connected from {} (session {})",
                 first.hello().node_id(), first.hello().epoch(), ctx->peer(), *id);

    SyncSession session(ctx, stream, service_, &hlc_, *id, options_);
    grpc::Status result = grpc::Status::OK;
    if (session.WriteInitial(out)) {
      std::thread pump([&session] { session.PumpLoop(); });
      v1::NodeMessage message;
      while (stream->Read(&message)) {
        bool write_failed = false;
        absl::Status s = session.OnMessage(message, &write_failed);
        if (!s.ok()) {
          spdlog::warn("sync: node '{}' session {}: {}", first.hello().node_id(), *id,
                       s.ToString());
          result = ToGrpc(s);
          break;
        }
        if (write_failed) break;
      }
      session.Finish();
      pump.join();
    }
    service_->engine()->Close(*id);
    spdlog::info("sync: node '{}' session {} closed", first.hello().node_id(), *id);
    return result;
  }

 private:
  CentralService* const service_;
  const GrpcServerOptions options_;
  HybridLogicalClock hlc_;
};

class CentralGrpcService final : public v1::Central::Service {
 public:
  explicit CentralGrpcService(CentralService* service) : service_(service) {}

  grpc::Status Import(grpc::ServerContext*, const v1::ImportRequest* request,
                      v1::ImportResult* response) override {
    return Reply(service_->Import(*request), response);
  }
  grpc::Status GetNetworkStock(grpc::ServerContext*, const v1::NetworkStockRequest* request,
                               v1::NetworkStockResponse* response) override {
    return Reply(service_->GetNetworkStock(*request), response);
  }
  grpc::Status ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                         v1::ListNodesResponse* response) override {
    return Reply(service_->ListNodes(), response);
  }
  grpc::Status ListExceptions(grpc::ServerContext*, const v1::ListExceptionsRequest* request,
                              v1::ListExceptionsResponse* response) override {
    return Reply(service_->ListExceptions(*request), response);
  }
  grpc::Status AssignException(grpc::ServerContext*, const v1::ExceptionActionRequest* request,
                               v1::ExceptionEntry* response) override {
    return Reply(service_->AssignException(*request), response);
  }
  grpc::Status ResolveException(grpc::ServerContext*, const v1::ExceptionActionRequest* request,
                                v1::ExceptionEntry* response) override {
    return Reply(service_->ResolveException(*request), response);
  }
  grpc::Status ListChannels(grpc::ServerContext*, const v1::ListChannelsRequest*,
                            v1::ListChannelsResponse* response) override {
    return Reply(service_->ListChannels(), response);
  }

 private:
  CentralService* const service_;
};

// The operator named by the call's metadata, or "" (gRPC callers are not authenticated yet).
std::string OperatorOf(const grpc::ServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("x-depot-operator");
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

class OrdersGrpcService final : public v1::Orders::Service {
 public:
  explicit OrdersGrpcService(OrderService* orders) : orders_(orders) {}

  grpc::Status Capture(grpc::ServerContext* ctx, const v1::CaptureOrderRequest* request,
                       v1::CaptureOrderResponse* response) override {
    return Reply(orders_->Capture(*request, OperatorOf(ctx)), response);
  }
  grpc::Status Get(grpc::ServerContext*, const v1::GetOrderRequest* request,
                   v1::Order* response) override {
    return Reply(orders_->Get(request->order_id()), response);
  }
  grpc::Status List(grpc::ServerContext*, const v1::ListOrdersRequest* request,
                    v1::ListOrdersResponse* response) override {
    return Reply(orders_->List(*request), response);
  }
  grpc::Status Cancel(grpc::ServerContext* ctx, const v1::CancelOrderRequest* request,
                      v1::Order* response) override {
    return Reply(orders_->Cancel(*request, OperatorOf(ctx)), response);
  }
  grpc::Status Review(grpc::ServerContext* ctx, const v1::ReviewOrderRequest* request,
                      v1::Order* response) override {
    return Reply(orders_->Review(*request, OperatorOf(ctx)), response);
  }
  grpc::Status ConfirmDelivery(grpc::ServerContext* ctx, const v1::DeliveryRequest* request,
                               v1::Order* response) override {
    return Reply(orders_->ConfirmDelivery(*request, OperatorOf(ctx)), response);
  }
  grpc::Status Kpis(grpc::ServerContext*, const v1::KpiRequest* request,
                    v1::KpiResponse* response) override {
    return Reply(orders_->Kpis(*request), response);
  }

 private:
  OrderService* const orders_;
};

class RightsGrpcService final : public v1::Rights::Service {
 public:
  explicit RightsGrpcService(RightsService* rights) : rights_(rights) {}

  grpc::Status List(grpc::ServerContext*, const v1::ListRightsRequest* request,
                    v1::ListRightsResponse* response) override {
    return Reply(rights_->List(*request), response);
  }
  grpc::Status History(grpc::ServerContext*, const v1::RightsHistoryRequest* request,
                       v1::RightsHistoryResponse* response) override {
    return Reply(rights_->History(*request), response);
  }
  grpc::Status Release(grpc::ServerContext* ctx, const v1::ReleaseRightsRequest* request,
                       v1::CentralRights* response) override {
    return Reply(rights_->Release(*request, OperatorOf(ctx)), response);
  }
  grpc::Status ListPolicies(grpc::ServerContext*, const v1::ListPoliciesRequest*,
                            v1::ListPoliciesResponse* response) override {
    return Reply(rights_->ListPolicies(), response);
  }
  grpc::Status SetPolicy(grpc::ServerContext* ctx, const v1::RightsPolicy* request,
                         v1::RightsPolicy* response) override {
    return Reply(rights_->SetPolicy(*request, OperatorOf(ctx)), response);
  }
  grpc::Status Listings(grpc::ServerContext*, const v1::ListingsRequest* request,
                        v1::ListingsResponse* response) override {
    return Reply(rights_->Listings(*request), response);
  }

 private:
  RightsService* const rights_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// GrpcServer

class GrpcServer::Impl {
 public:
  Impl(CentralService* service, const GrpcServerOptions& options)
      : sync_(service, options), central_(service) {
    if (service->orders()) orders_ = std::make_unique<OrdersGrpcService>(service->orders());
    if (service->rights()) rights_ = std::make_unique<RightsGrpcService>(service->rights());
  }

  NodeSyncService sync_;
  CentralGrpcService central_;
  std::unique_ptr<OrdersGrpcService> orders_;
  std::unique_ptr<RightsGrpcService> rights_;
  std::unique_ptr<grpc::Server> server_;
  uint16_t port_ = 0;
  std::once_flag stopped_;
};

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const GrpcServerOptions& options,
                                                               CentralService* service) {
  auto impl = std::make_unique<Impl>(service, options);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  const bool v6 = options.host.find(':') != std::string::npos && options.host.front() != '[';
  const std::string address =
      v6 ? absl::StrCat("[", options.host, "]:", options.port)
         : absl::StrCat(options.host, ":", options.port);
  int selected_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &selected_port);
  builder.RegisterService(&impl->sync_);
  builder.RegisterService(&impl->central_);
  if (impl->orders_) builder.RegisterService(impl->orders_.get());
  if (impl->rights_) builder.RegisterService(impl->rights_.get());
  builder.SetMaxReceiveMessageSize(64 << 20);
  // Nodes ping every 10 s to detect dead connections; allow it even without calls in flight.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  impl->server_ = builder.BuildAndStart();
  if (!impl->server_ || selected_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", address));
  }
  if (auto* health = impl->server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
  }
  impl->port_ = static_cast<uint16_t>(selected_port);
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(impl)));
}

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcServer::~GrpcServer() { Stop(); }

uint16_t GrpcServer::port() const { return impl_->port_; }

void GrpcServer::Stop() {
  std::call_once(impl_->stopped_, [this] {
    // Streams never end by themselves: give unary calls a moment, then cancel everything.
    if (auto* health = impl_->server_->GetHealthCheckService()) health->SetServingStatus(false);
    impl_->server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    impl_->server_->Wait();
  });
}

}  // namespace depot::central

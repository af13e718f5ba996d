// Small helpers shared by the JSON-over-HTTP adapters of node and central: answering with a
// protobuf message as JSON, and a worker thread for slow administrative requests so they never
// occupy an HTTP I/O thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/json.h"

namespace google::protobuf {
class Message;
}

namespace depot::http {

// A JSON answer with the message in protobuf's JSON mapping.
Response JsonOk(const google::protobuf::Message& message, int status = 200);

// Answers with the value as JSON, or with the error body of the status.
template <typename T>
void Reply(const absl::StatusOr<T>& result, const Responder& respond) {
  if (!result.ok()) return respond(ErrorResponse(result.status()));
  respond(JsonOk(*result));
}

// Wraps a responder to count the request (depot_http_requests_total{route,code}) and record its
// latency (depot_http_request_duration_seconds{route}) when it is answered. registry must
// outlive the answer.
Responder Measured(metrics::Registry* registry, const std::string& route, Responder respond);

// Answers GET /healthz ({"status":"ok"}) and GET /metrics (Prometheus text from registry) and
// returns true; returns false, touching nothing, for any other path.
bool ServeHealthAndMetrics(const Request& request, metrics::Registry* registry,
                           const Responder& respond);

// One thread that runs posted work in order. The destructor runs what is queued, then joins.
class Worker {
 public:
  Worker();
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  void Post(std::function<void()> work);

 private:
  void Run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace depot::http

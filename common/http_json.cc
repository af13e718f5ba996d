#include "common/http_json.h"

#include <google/protobuf/message.h>

#include <chrono>
#include <string>

namespace depot::http {

Response JsonOk(const google::protobuf::Message& message, int status) {
  Response r;
  r.status = status;
  r.body = MessageToJson(message);
  return r;
}

Responder Measured(metrics::Registry* registry, const std::string& route, Responder respond) {
  const auto start = std::chrono::steady_clock::now();
  auto* latency = &registry->GetHistogram("depot_http_request_duration_seconds",
                                          "HTTP request latency by route.", {{"route", route}});
  return [registry, route, start, latency, respond = std::move(respond)](Response r) {
    latency->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    registry
        ->GetCounter("depot_http_requests_total", "HTTP requests by route and status code.",
                     {{"route", route}, {"code", std::to_string(r.status)}})
        .Inc();
    respond(std::move(r));
  };
}

bool ServeHealthAndMetrics(const Request& request, metrics::Registry* registry,
                           const Responder& respond) {
  Response r;
  if (request.path == "/healthz") {
    r.body = "{\"status\":\"ok\"}";
  } else if (request.path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4";
    r.body = registry->Render();
  } else {
    return false;
  }
  respond(std::move(r));
  return true;
}

Worker::Worker() : thread_([this] { Run(); }) {}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Worker::Post(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(work));
  }
  cv_.notify_one();
}

void Worker::Run() {
  for (;;) {
    std::function<void()> work;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    work();
  }
}

}  // namespace depot::http

// Prometheus metrics: counters, gauges, histograms and callback gauges collected in a Registry
// and rendered in the text exposition format 0.0.4 (served on /metrics).
//
// Typical use: look a metric up once (GetCounter takes a lock) and keep the reference; updating
// it is lock-free.
//
//   metrics::Counter& requests = registry.GetCounter(
//       "depot_http_requests_total", "HTTP requests served.", {{"code", "200"}});
//   requests.Inc();

#ifndef DEPOT_COMMON_METRICS_H_
#define DEPOT_COMMON_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace depot::metrics {

// Label (name, value) pairs. Order does not matter: {a,b} and {b,a} name the same series.
using Labels = std::vector<std::pair<std::string, std::string>>;

// Monotonically increasing value. Thread-safe and lock-free.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds v. Counters never decrease: negative or NaN increments are ignored.
  void Inc(double v = 1);
  double Value() const;

 private:
  std::atomic<double> value_{0};
};

// Value that can go up and down. Thread-safe and lock-free.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v);
  void Add(double v);  // negative v subtracts
  double Value() const;

 private:
  std::atomic<double> value_{0};
};

// Distribution of observed values over fixed buckets (rendered cumulatively, Prometheus style).
// Thread-safe and lock-free: Observe is one relaxed atomic add per bucket hit plus one for the sum.
// A concurrent Render may see an observation in the count but not yet in the sum (never the
// reverse inconsistency between buckets and count: _count is derived from the buckets).
class Histogram {
 public:
  // `buckets` are upper bounds (inclusive); they are sorted and de-duplicated, and non-finite
  // values are dropped (the +Inf bucket always exists implicitly).
  explicit Histogram(std::vector<double> buckets);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double value);  // NaN is ignored
  uint64_t Count() const;
  double Sum() const;

  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (non-cumulative) counts; the last element is the +Inf bucket.
  std::vector<uint64_t> BucketCounts() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1 entries
  std::atomic<double> sum_{0};
};

// Seconds: 50us, 100us, 250us, 500us, 1ms, 2.5ms, 5ms, 10ms, 25ms, 50ms, 100ms, 250ms, 500ms,
// 1s, 2.5s, 5s.
std::vector<double> DefaultLatencyBuckets();

// A set of metric families. Thread-safe. Owns every metric it hands out; references stay valid
// for the Registry's lifetime.
//
// Programming errors abort the process with a message on stderr (like a failed CHECK): an invalid
// metric or label name ([a-zA-Z_:][a-zA-Z0-9_:]* and [a-zA-Z_][a-zA-Z0-9_]*, label names must not
// start with "__"), duplicate label names, "le" as a histogram label, or reusing a family name
// with a different type. Label values may be any string.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the metric for (name, labels), creating it on first use; the same (name, labels)
  // always returns the same object. `help` is used the first time the family is seen.
  Counter& GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
  // `buckets` are used when the series is created; later calls for the same series return the
  // existing histogram whatever buckets they pass.
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const Labels& labels = {},
                          std::vector<double> buckets = DefaultLatencyBuckets());

  // A gauge (without labels) whose value is read by calling fn at Render time, e.g. the outbox
  // depth from the database. fn is called without any registry lock held (it may use the
  // registry) from the thread calling Render, possibly concurrently; if it throws, the sample is
  // omitted. Adding the same name again replaces the callback.
  void AddCallbackGauge(const std::string& name, const std::string& help,
                        std::function<double()> fn);

  // Prometheus text exposition format 0.0.4 (Content-Type
  // "text/plain; version=0.0.4; charset=utf-8"): # HELP and # TYPE per family, families sorted
  // by name, series sorted by labels, label values and help text escaped, histograms as
  // _bucket{le=...} (cumulative, including +Inf), _sum and _count.
  std::string Render() const;

 private:
  struct Family;
  Family& GetFamily(const std::string& name, const std::string& help, int type);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>> families_;  // guarded by mu_
};

}  // namespace depot::metrics

#endif  // DEPOT_COMMON_METRICS_H_

#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace depot::metrics {
namespace {

enum Type : int { kCounter = 0, kGauge = 1, kHistogram = 2, kCallbackGauge = 3 };

const char* TypeName(int type) {
  switch (type) {
    case kCounter: return "counter";
    case kHistogram: return "histogram";
    default: return "gauge";
  }
}

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "depot::metrics: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

bool ValidMetricName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool ValidLabelName(const std::string& name) {
  if (name.empty() || name.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Sorted by name; aborts on invalid or duplicate names.
Labels Canonical(const std::string& metric, const Labels& labels, bool histogram) {
  Labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    const std::string& name = sorted[i].first;
    if (!ValidLabelName(name))
      Fail(absl::StrCat("invalid label name '", name, "' for metric ", metric));
    if (histogram && name == "le")
      Fail(absl::StrCat("histogram ", metric, " may not use the label 'le'"));
    if (i > 0 && sorted[i - 1].first == name) {
      Fail(absl::StrCat("duplicate label '", name, "' for metric ", metric));
    }
  }
  return sorted;
}

// Like Go's strconv.FormatFloat(v, 'g', -1, 64), which Prometheus clients use, except that
// integral values below 2^53 are written as plain integers.
void AppendDouble(std::string& out, double v) {
  char buf[64];
  std::to_chars_result res;
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  const double magnitude = std::fabs(v);
  if (v == std::trunc(v) && magnitude < 9007199254740992.0) {  // 2^53: exact integer
    res = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v));
  } else if (magnitude >= 1e-4 && magnitude < 9007199254740992.0) {
    res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);  // shortest
  } else {
    res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);  // shortest
  }
  out.append(buf, res.ptr);
}

void AppendUint(std::string& out, uint64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, res.ptr);
}

void AppendEscaped(std::string& out, const std::string& s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
}

// Appends `{a="1",b="2"` plus an optional extra label, then `}`; nothing when there are none.
void AppendLabels(std::string& out, const Labels& labels, const char* extra_name = nullptr,
                  const std::string& extra_value = "") {
  if (labels.empty() && extra_name == nullptr) return;
  out.push_back('{');
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out.push_back(',');
    first = false;
    out += name;
    out += "=\"";
    AppendEscaped(out, value, true);
    out.push_back('"');
  }
  if (extra_name != nullptr) {
    if (!first) out.push_back(',');
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out.push_back('"');
  }
  out.push_back('}');
}

void AppendHeader(std::string& out, const std::string& name, const std::string& help, int type) {
  out += "# HELP ";
  out += name;
  out.push_back(' ');
  AppendEscaped(out, help, false);
  out += "\n# TYPE ";
  out += name;
  out.push_back(' ');
  out += TypeName(type);
  out.push_back('\n');
}

}  // namespace

// ---- Counter / Gauge / Histogram ------------------------------------------------------------

void Counter::Inc(double v) {
  if (!(v >= 0)) return;  // negative or NaN
  value_.fetch_add(v, std::memory_order_relaxed);
}

double Counter::Value() const { return value_.load(std::memory_order_relaxed); }

void Gauge::Set(double v) { value_.store(v, std::memory_order_relaxed); }

void Gauge::Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }

double Gauge::Value() const { return value_.load(std::memory_order_relaxed); }

Histogram::Histogram(std::vector<double> buckets) {
  buckets.erase(
      std::remove_if(buckets.begin(), buckets.end(), [](double b) { return !std::isfinite(b); }),
      buckets.end());
  std::sort(buckets.begin(), buckets.end());
  buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
  bounds_ = std::move(buckets);
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // First bound >= value ("le" semantics); bounds_.size() is the +Inf bucket.
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

uint64_t Histogram::Count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) total += counts_[i].load(std::memory_order_relaxed);
  return total;
}

double Histogram::Sum() const { return sum_.load(std::memory_order_relaxed); }

std::vector<double> DefaultLatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
}

// ---- Registry -------------------------------------------------------------------------------

struct Registry::Family {
  std::string help;
  int type = kCounter;
  std::map<Labels, std::unique_ptr<Counter>> counters;
  std::map<Labels, std::unique_ptr<Gauge>> gauges;
  std::map<Labels, std::unique_ptr<Histogram>> histograms;
  std::shared_ptr<std::function<double()>> callback;  // kCallbackGauge
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::GetFamily(const std::string& name, const std::string& help, int type) {
  // Caller holds mu_.
  auto it = families_.find(name);
  if (it == families_.end()) {
    if (!ValidMetricName(name)) Fail(absl::StrCat("invalid metric name '", name, "'"));
    auto family = std::make_unique<Family>();
    family->help = help;
    family->type = type;
    it = families_.emplace(name, std::move(family)).first;
  } else if (it->second->type != type) {
    Fail(absl::StrCat("metric ", name, " registered as ", TypeName(it->second->type),
                      it->second->type == kCallbackGauge ? " (callback)" : "", ", requested as ",
                      TypeName(type), type == kCallbackGauge ? " (callback)" : ""));
  }
  return *it->second;
}

Counter& Registry::GetCounter(const std::string& name, const std::string& help,
                              const Labels& labels) {
  Labels key = Canonical(name, labels, false);
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = GetFamily(name, help, kCounter).counters[std::move(key)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::GetGauge(const std::string& name, const std::string& help, const Labels& labels) {
  Labels key = Canonical(name, labels, false);
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = GetFamily(name, help, kGauge).gauges[std::move(key)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::GetHistogram(const std::string& name, const std::string& help,
                                  const Labels& labels, std::vector<double> buckets) {
  Labels key = Canonical(name, labels, true);
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = GetFamily(name, help, kHistogram).histograms[std::move(key)];
  if (!slot) slot = std::make_unique<Histogram>(std::move(buckets));
  return *slot;
}

void Registry::AddCallbackGauge(const std::string& name, const std::string& help,
                                std::function<double()> fn) {
  auto callback = std::make_shared<std::function<double()>>(std::move(fn));
  std::lock_guard<std::mutex> lock(mu_);
  GetFamily(name, help, kCallbackGauge).callback = std::move(callback);
}

std::string Registry::Render() const {
  // Static families are rendered under the lock (atomic loads and formatting only); callback
  // gauges are evaluated afterwards without it, so that callbacks may block or use the registry.
  struct Part {
    std::string text;                                   // complete text of a static family
    std::string name;                                   // callback family
    std::string help;                                   // callback family
    std::shared_ptr<std::function<double()>> callback;  // null for static families
  };
  std::vector<Part> parts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    parts.reserve(families_.size());
    for (const auto& [name, family] : families_) {
      Part part;
      if (family->type == kCallbackGauge) {
        part.name = name;
        part.help = family->help;
        part.callback = family->callback;
        parts.push_back(std::move(part));
        continue;
      }
      std::string& out = part.text;
      AppendHeader(out, name, family->help, family->type);
      for (const auto& [labels, counter] : family->counters) {
        out += name;
        AppendLabels(out, labels);
        out.push_back(' ');
        AppendDouble(out, counter->Value());
        out.push_back('\n');
      }
      for (const auto& [labels, gauge] : family->gauges) {
        out += name;
        AppendLabels(out, labels);
        out.push_back(' ');
        AppendDouble(out, gauge->Value());
        out.push_back('\n');
      }
      for (const auto& [labels, histogram] : family->histograms) {
        const std::vector<uint64_t> counts = histogram->BucketCounts();
        const double sum = histogram->Sum();
        const std::vector<double>& bounds = histogram->bounds();
        uint64_t cumulative = 0;
        std::string le;
        for (size_t i = 0; i < counts.size(); ++i) {
          cumulative += counts[i];
          le.clear();
          if (i < bounds.size()) {
            AppendDouble(le, bounds[i]);
          } else {
            le = "+Inf";
          }
          out += name;
          out += "_bucket";
          AppendLabels(out, labels, "le", le);
          out.push_back(' ');
          AppendUint(out, cumulative);
          out.push_back('\n');
        }
        out += name;
        out += "_sum";
        AppendLabels(out, labels);
        out.push_back(' ');
        AppendDouble(out, sum);
        out.push_back('\n');
        out += name;
        out += "_count";
        AppendLabels(out, labels);
        out.push_back(' ');
        AppendUint(out, cumulative);
        out.push_back('\n');
      }
      parts.push_back(std::move(part));
    }
  }

  std::string out;
  for (Part& part : parts) {
    if (!part.callback) {
      out += part.text;
      continue;
    }
    AppendHeader(out, part.name, part.help, kGauge);
    double value = 0;
    bool ok = false;
    if (*part.callback) {
      try {
        value = (*part.callback)();
        ok = true;
      } catch (...) {  // the sample is omitted
      }
    }
    if (ok) {
      out += part.name;
      out.push_back(' ');
      AppendDouble(out, value);
      out.push_back('\n');
    }
  }
  return out;
}

}  // namespace depot::metrics

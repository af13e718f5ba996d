// Tests for common/metrics.

#include <cmath>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "common/metrics.h"

namespace depot::metrics {
namespace {

// Minimal structural check of the text exposition format: every line is a comment
// ("# HELP name text" / "# TYPE name type") or a sample "name{labels} value" whose family was
// declared by a preceding # TYPE.
void CheckExpositionFormat(const std::string& text) {
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  std::istringstream in(text);
  std::string line;
  std::string family;
  std::string type;
  while (std::getline(in, line)) {
    INFO("line: " << line);
    REQUIRE(!line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream fields(line.substr(7));
      std::string name;
      fields >> name >> type;
      REQUIRE(name == family);
      REQUIRE((type == "counter" || type == "gauge" || type == "histogram"));
      continue;
    }
    REQUIRE(line[0] != '#');
    size_t name_end = line.find_first_of("{ ");
    REQUIRE(name_end != std::string::npos);
    std::string name = line.substr(0, name_end);
    if (type == "histogram") {
      REQUIRE((name == family + "_bucket" || name == family + "_sum" || name == family + "_count"));
    } else {
      REQUIRE(name == family);
    }
    size_t value_start = line.rfind(' ');
    if (line[name_end] == '{') REQUIRE(line[value_start - 1] == '}');
    std::string value = line.substr(value_start + 1);
    if (value != "+Inf" && value != "-Inf" && value != "NaN") {
      size_t used = 0;
      (void)std::stod(value, &used);
      REQUIRE(used == value.size());
    }
  }
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_CASE("counters, gauges and histograms render in exposition format", "[metrics]") {
  Registry registry;
  registry
      .GetCounter("depot_requests_total", "Requests served.", {{"method", "GET"}, {"code", "200"}})
      .Inc();
  registry.GetCounter("depot_requests_total", "ignored", {{"code", "200"}, {"method", "GET"}})
      .Inc(2);
  registry.GetCounter("depot_requests_total", "ignored", {{"method", "POST"}, {"code", "500"}})
      .Inc(0.5);
  registry.GetGauge("depot_inflight", "In-flight requests.").Set(3);
  registry.GetGauge("depot_inflight", "").Add(-1);
  registry.GetGauge("depot_weird", "Help with \\ and\nnewline.", {{"v", "a\"b\\c\nd"}}).Set(-2.5);
  Histogram& h =
      registry.GetHistogram("depot_latency_seconds", "Latency.", {{"op", "get"}}, {0.1, 0.5, 1});
  h.Observe(0.05);
  h.Observe(0.1);  // le is inclusive
  h.Observe(0.7);
  h.Observe(3);

  const std::string text = registry.Render();
  CheckExpositionFormat(text);
  const std::string expected =
      "# HELP depot_inflight In-flight requests.\n"
      "# TYPE depot_inflight gauge\n"
      "depot_inflight 2\n"
      "# HELP depot_latency_seconds Latency.\n"
      "# TYPE depot_latency_seconds histogram\n"
      "depot_latency_seconds_bucket{op=\"get\",le=\"0.1\"} 2\n"
      "depot_latency_seconds_bucket{op=\"get\",le=\"0.5\"} 2\n"
      "depot_latency_seconds_bucket{op=\"get\",le=\"1\"} 3\n"
      "depot_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
      "depot_latency_seconds_sum{op=\"get\"} 3.85\n"
      "depot_latency_seconds_count{op=\"get\"} 4\n"
      "# HELP depot_requests_total Requests served.\n"
      "# TYPE depot_requests_total counter\n"
      "depot_requests_total{code=\"200\",method=\"GET\"} 3\n"
      "depot_requests_total{code=\"500\",method=\"POST\"} 0.5\n"
      "# HELP depot_weird Help with \\\\ and\\nnewline.\n"
      "# TYPE depot_weird gauge\n"
      "depot_weird{v=\"a\\\"b\\\\c\\nd\"} -2.5\n";
  CHECK(text == expected);
  CHECK(h.Count() == 4);
  CHECK(h.Sum() == Approx(3.85));
}

TEST_CASE("same name and labels return the same object", "[metrics]") {
  Registry registry;
  Counter& a = registry.GetCounter("c_total", "C.", {{"x", "1"}, {"y", "2"}});
  Counter& b = registry.GetCounter("c_total", "C.", {{"y", "2"}, {"x", "1"}});
  Counter& other = registry.GetCounter("c_total", "C.", {{"x", "2"}, {"y", "2"}});
  CHECK(&a == &b);
  CHECK(&a != &other);
  CHECK(&registry.GetGauge("g", "G.") == &registry.GetGauge("g", "G."));
  CHECK(&registry.GetHistogram("h", "H.") == &registry.GetHistogram("h", "H.", {}, {1, 2}));
  a.Inc();
  b.Inc();
  CHECK(a.Value() == 2);
  a.Inc(-5);  // counters never decrease
  CHECK(a.Value() == 2);
}

TEST_CASE("default latency buckets", "[metrics]") {
  std::vector<double> b = DefaultLatencyBuckets();
  REQUIRE(b.size() == 16);
  CHECK(b.front() == 0.00005);
  CHECK(b.back() == 5);
  Registry registry;
  registry.GetHistogram("rpc_seconds", "RPC latency.").Observe(0.0003);
  const std::string text = registry.Render();
  CheckExpositionFormat(text);
  CHECK(Contains(text, "rpc_seconds_bucket{le=\"5e-05\"} 0\n"));
  CHECK(Contains(text, "rpc_seconds_bucket{le=\"0.00025\"} 0\n"));
  CHECK(Contains(text, "rpc_seconds_bucket{le=\"0.0005\"} 1\n"));
  CHECK(Contains(text, "rpc_seconds_bucket{le=\"2.5\"} 1\n"));
  CHECK(Contains(text, "rpc_seconds_bucket{le=\"+Inf\"} 1\n"));
  CHECK(Contains(text, "rpc_seconds_sum 0.0003\n"));
  CHECK(Contains(text, "rpc_seconds_count 1\n"));
}

TEST_CASE("callback gauge is evaluated at render time", "[metrics]") {
  Registry registry;
  double depth = 7;
  registry.AddCallbackGauge("depot_outbox_depth", "Outbox rows waiting.",
                            [&depth] { return depth; });
  // A callback may use the registry (no lock is held while it runs).
  registry.AddCallbackGauge("depot_families", "Uses the registry.", [&registry] {
    return registry.GetCounter("depot_inner_total", "Inner.").Value();
  });
  registry.AddCallbackGauge("depot_broken", "Throws.",
                            []() -> double { throw std::runtime_error("db down"); });
  std::string text = registry.Render();
  CheckExpositionFormat(text);
  CHECK(Contains(text,
                 "# HELP depot_outbox_depth Outbox rows waiting.\n"
                 "# TYPE depot_outbox_depth gauge\n"
                 "depot_outbox_depth 7\n"));
  CHECK(Contains(text, "depot_families 0\n"));
  CHECK(Contains(text, "# TYPE depot_broken gauge\n"));
  CHECK_FALSE(Contains(text, "\ndepot_broken "));  // HELP/TYPE only, no sample
  depth = 1.25;
  text = registry.Render();
  CHECK(Contains(text, "depot_outbox_depth 1.25\n"));
  CHECK(Contains(text, "depot_inner_total 0\n"));  // created by the callback during Render
  // Families are sorted by name.
  CHECK(text.find("depot_broken") < text.find("depot_families"));
  CHECK(text.find("depot_families") < text.find("depot_inner_total"));
  CHECK(text.find("depot_inner_total") < text.find("depot_outbox_depth"));
}

TEST_CASE("special values render as Prometheus floats", "[metrics]") {
  Registry registry;
  registry.GetGauge("g_big", "B.").Set(1e20);
  registry.GetGauge("g_inf", "I.").Set(INFINITY);
  registry.GetGauge("g_nan", "N.").Set(NAN);
  registry.GetGauge("g_small", "S.").Set(1.5e-7);
  registry.GetGauge("g_frac", "F.").Set(0.0005);
  registry.GetGauge("g_neg", "N.").Set(-1234.5);
  registry.GetCounter("c_int_total", "I.").Inc(123456789);
  const std::string text = registry.Render();
  CheckExpositionFormat(text);
  CHECK(Contains(text, "g_big 1e+20\n"));
  CHECK(Contains(text, "g_inf +Inf\n"));
  CHECK(Contains(text, "g_nan NaN\n"));
  CHECK(Contains(text, "g_small 1.5e-07\n"));
  CHECK(Contains(text, "g_frac 0.0005\n"));
  CHECK(Contains(text, "g_neg -1234.5\n"));
  CHECK(Contains(text, "c_int_total 123456789\n"));
}

TEST_CASE("concurrent updates sum correctly", "[metrics]") {
  Registry registry;
  constexpr int kThreads = 8;
  constexpr int kIterations = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&registry, t] {
      // Lookups race with each other and with updates.
      Counter& c = registry.GetCounter("ops_total", "Ops.", {{"kind", "all"}});
      Gauge& g = registry.GetGauge("level", "Level.");
      Histogram& h = registry.GetHistogram("lat", "Lat.", {}, {0.5});
      for (int i = 0; i < kIterations; ++i) {
        c.Inc();
        g.Add(t % 2 == 0 ? 1 : -1);
        h.Observe(i % 2 == 0 ? 0.25 : 0.75);
        if (i % 1000 == 0) {
          registry.GetCounter("ops_total", "Ops.", {{"kind", absl::StrCat("t", t)}}).Inc();
          (void)registry.Render();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(registry.GetCounter("ops_total", "Ops.", {{"kind", "all"}}).Value() ==
        kThreads * kIterations);
  CHECK(registry.GetGauge("level", "Level.").Value() == 0);
  Histogram& h = registry.GetHistogram("lat", "Lat.");
  CHECK(h.Count() == static_cast<uint64_t>(kThreads * kIterations));
  CHECK(h.Sum() == Approx(kThreads * kIterations * 0.5));
  const std::string text = registry.Render();
  CheckExpositionFormat(text);
  CHECK(Contains(text, absl::StrCat("lat_bucket{le=\"0.5\"} ", kThreads * kIterations / 2, "\n")));
  CHECK(Contains(text, "ops_total{kind=\"t7\"} 20\n"));
}

}  // namespace
}  // namespace depot::metrics

// flight::bench: the result record's ratio rule, and a smoke run of every
// `flight bench NAME` at its smallest size: each prints JSON lines with bench,
// case, params, value, unit, and — where a baseline exists — baseline,
// baseline_value and a ratio consistent with them (value / baseline_value for
// rates, baseline_value / value for times).
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/bench/record.h"
#include "tests/support/process.h"

namespace flight::bench {
namespace {

TEST(BenchRecord, RatioIsValueOverBaselineForRatesAndInverseForTimes) {
  BenchRecord rate{"transport", "tcp_put_get", {{"size", 64}}, 3.0, "GB/s", std::string("raw"),
                   4.0};
  auto j = rate.to_json();
  EXPECT_DOUBLE_EQ(j["ratio"].get<double>(), 0.75);
  EXPECT_EQ(j["case"], "tcp_put_get");
  BenchRecord time{"scale", "round", {}, 2.0, "s", std::string("ideal"), 1.0, false};
  EXPECT_DOUBLE_EQ(time.to_json()["ratio"].get<double>(), 0.5);
  BenchRecord plain;
  plain.value = 1.0;
  EXPECT_FALSE(plain.to_json().contains("ratio"));
}

// "ns/op" is a time per operation: lower is better, like "ns".
bool is_time_unit(const std::string& unit) {
  const std::string u = unit.substr(0, unit.find('/'));
  return u == "s" || u == "ms" || u == "us" || u == "ns" || u == "bytes";
}

// Runs `flight bench <args>` and checks every line of its output (handed
// back in `records` when given).
void smoke(const std::vector<std::string>& args, size_t min_lines = 1,
           std::vector<nlohmann::json>* records = nullptr) {
  testing::TempDir dir;
  std::vector<std::string> argv = {FLIGHT_BINARY, "--log-level", "warn", "bench"};
  argv.insert(argv.end(), args.begin(), args.end());
  testing::Subprocess::Options o;
  o.stdout_path = dir.file("out");
  o.stderr_path = dir.file("err");
  testing::Subprocess p(argv, o);
  ASSERT_EQ(p.wait(), 0) << testing::read_file(dir.file("err"));
  std::istringstream out(testing::read_file(dir.file("out")));
  std::string line;
  size_t lines = 0;
  while (std::getline(out, line)) {
    if (line.empty()) continue;
    ++lines;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    if (records) records->push_back(j);
    for (const char* f : {"bench", "case", "params", "value", "unit"}) {
      EXPECT_TRUE(j.contains(f)) << f << " missing in " << line;
    }
    EXPECT_TRUE(j["value"].is_number()) << line;
    EXPECT_TRUE(j["params"].is_object()) << line;
    if (!j.contains("baseline")) {
      EXPECT_FALSE(j.contains("ratio")) << line;
      continue;
    }
    ASSERT_TRUE(j.contains("baseline_value") && j.contains("ratio")) << line;
    const double v = j["value"].get<double>(), b = j["baseline_value"].get<double>(),
                 r = j["ratio"].get<double>();
    // Rates: value / baseline; times (and byte counts, lower is better):
    // baseline / value. Either form is accepted as long as the ratio matches one.
    const double rate = b > 0 ? v / b : 0, time = v > 0 ? b / v : 0;
    const double want = is_time_unit(j["unit"].get<std::string>()) ? time : rate;
    EXPECT_NEAR(r, want, 1e-9 + 1e-6 * std::abs(want)) << line;
  }
  EXPECT_GE(lines, min_lines) << "no result lines; stderr: " << testing::read_file(dir.file("err"));
}

TEST(BenchSmoke, Transport) { smoke({"transport", "--sizes", "1KB", "--budget", "0.01"}, 5); }
TEST(BenchSmoke, Aggregate) {
  smoke({"aggregate", "--k", "2", "--numel", "10000", "--repeat", "1"});
}
TEST(BenchSmoke, Faas) { smoke({"faas", "--tasks", "100", "--rounds", "10"}, 4); }
TEST(BenchSmoke, Topology) { smoke({"topology", "--nodes", "2081", "--repeat", "1"}); }
TEST(BenchSmoke, Train) {
  smoke({"train", "--models", "mlp", "--seconds", "0.05", "--workers", "4"});
}
TEST(BenchSmoke, AsyncVsSync) { smoke({"async-vs-sync", "--rounds", "1", "--model", "mlp"}, 4); }
TEST(BenchSmoke, Scale) {
  smoke({"scale", "--workers", "2", "--topologies", "flat", "--models", "tiny", "--controls",
         "local"});
}
TEST(BenchSmoke, Hierarchy) {
  smoke({"hierarchy", "--leaves", "4", "--heights", "1,2", "--model", "tiny"}, 4);
}
// The bare loop does the engine's work exactly: its final model is the
// engine's, bit for bit (else the overhead compares different work).
TEST(BenchSmoke, Overhead) {
  std::vector<nlohmann::json> records;
  smoke({"overhead", "--config", FLIGHT_SOURCE_DIR "/configs/fmnist-3tier.yaml", "--rounds", "1",
         "--controls", "local"},
        2, &records);
  ASSERT_EQ(records.size(), 2u);
  for (const auto& r : records) {
    EXPECT_EQ(r.value("same_model", false), true) << r.dump();
    EXPECT_EQ(r["engine_accuracy"], r["bare_accuracy"]) << r.dump();
  }
}
TEST(BenchSmoke, Privacy) {
  smoke({"privacy", "--numel", "10000", "--workers", "4", "--repeat", "1"});
}

}  // namespace
}  // namespace flight::bench

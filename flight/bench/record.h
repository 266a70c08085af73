// One benchmark result line, in the format of DESIGN.md ("Benchmarks"):
//   {"bench","case","params","value","unit","baseline","baseline_value","ratio", ...extra}
// The baseline is measured in the same run. ratio = value / baseline_value for
// rates (higher is better) and baseline_value / value for times.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace flight::bench {

struct BenchRecord {
  std::string bench;      // "transport"
  std::string case_name;  // "tcp_put_get"
  nlohmann::json params = nlohmann::json::object();
  double value = 0;
  std::string unit;  // "GB/s", "s", "ms", "tasks/s"
  // Optional baseline; when set, ratio is emitted.
  std::optional<std::string> baseline;
  double baseline_value = 0;
  bool higher_is_better = true;  // true for rates, false for times
  nlohmann::json extra = nlohmann::json::object();

  nlohmann::json to_json() const;
};

// Writes one JSON line and flushes (benchmarks are often piped and killed).
void emit_bench(const BenchRecord& record, std::ostream& os);
void emit_bench(const BenchRecord& record);  // to stdout

// "8,512,10000" -> {8, 512, 10000}: a bench option listing positive integers.
// False (and *out unusable) on anything else or an empty list.
bool parse_positive_ints(const std::string& s, std::vector<int64_t>* out);

// The best (shortest) of `reps` runs of f, which returns its elapsed seconds.
template <typename F>
double best_of(int reps, F&& f) {
  double best = 1e300;
  for (int i = 0; i < reps; ++i) best = std::min(best, f());
  return best;
}

}  // namespace flight::bench

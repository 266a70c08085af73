#include "flight/bench/record.h"

#include <iostream>

#include "flight/base/strings.h"

namespace flight::bench {

nlohmann::json BenchRecord::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  j["bench"] = bench;
  j["case"] = case_name;
  j["params"] = params;
  j["value"] = value;
  j["unit"] = unit;
  if (baseline) {
    j["baseline"] = *baseline;
    j["baseline_value"] = baseline_value;
    double ratio = 0;
    if (higher_is_better) {
      ratio = baseline_value > 0 ? value / baseline_value : 0;
    } else {
      ratio = value > 0 ? baseline_value / value : 0;
    }
    j["ratio"] = ratio;
  }
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

void emit_bench(const BenchRecord& record, std::ostream& os) {
  os << record.to_json().dump() << std::endl;
}

void emit_bench(const BenchRecord& record) { emit_bench(record, std::cout); }

bool parse_positive_ints(const std::string& s, std::vector<int64_t>* out) {
  out->clear();
  for (const auto& part : split(s, ',')) {
    std::string t = trim(part);
    if (t.empty()) continue;
    try {
      size_t used = 0;
      long long v = std::stoll(t, &used);
      if (used != t.size() || v <= 0) return false;
      out->push_back(v);
    } catch (const std::exception&) {
      return false;
    }
  }
  return !out->empty();
}

}  // namespace flight::bench

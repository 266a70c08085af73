#include "flight/bench/registry.h"

#include <iostream>

namespace flight::bench {
namespace {

std::vector<BenchSpec>& mutable_benches() {
  static std::vector<BenchSpec> b;
  return b;
}

}  // namespace

bool register_bench(BenchSpec spec) {
  mutable_benches().push_back(std::move(spec));
  return true;
}

const std::vector<BenchSpec>& benches() { return mutable_benches(); }

int fail(const std::string& message, int code) {
  std::string one_line = message;
  for (char& c : one_line) {
    if (c == '\n') c = ' ';
  }
  std::cerr << "flight bench: error: " << one_line << std::endl;
  return code;
}

}  // namespace flight::bench

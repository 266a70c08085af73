#include "flight/base/ids.h"

#include <random>

namespace flight {

std::string random_hex(size_t n_hex) {
  thread_local std::mt19937_64 gen{[] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }()};
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n_hex);
  uint64_t bits = 0;
  int left = 0;
  for (size_t i = 0; i < n_hex; ++i) {
    if (left == 0) {
      bits = gen();
      left = 16;
    }
    out.push_back(kHex[bits & 0xf]);
    bits >>= 4;
    --left;
  }
  return out;
}

std::string new_id(const std::string& prefix) { return prefix + "-" + random_hex(24); }

}  // namespace flight

#include "flight/base/redis_url.h"

#include <cctype>

namespace flight {
namespace {

// All digits and at most `max`; false on empty, signs, spaces or overflow.
bool parse_digits(std::string_view s, long max, long* out) {
  if (s.empty() || s.size() > 10) return false;
  long v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

}  // namespace

std::string redact_redis_url(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  auto at = url.rfind('@');
  if (url.substr(0, kScheme.size()) != kScheme || at == std::string_view::npos) {
    return std::string(url);
  }
  return std::string(kScheme) + "***@" + std::string(url.substr(at + 1));
}

StatusOr<RedisUrl> parse_redis_url(std::string_view url) {
  const std::string quoted = "redis url '" + redact_redis_url(url) + "': ";
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return invalid_argument(quoted + "must start with redis://");
  }
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl out;
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view auth = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = auth.find(':');
    out.password = std::string(colon == std::string_view::npos ? auth : auth.substr(colon + 1));
  }
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      long v = 0;
      if (!parse_digits(db, 1L << 30, &v)) {
        return invalid_argument(quoted + "database '" + std::string(db) +
                                "' is not a non-negative integer");
      }
      out.db = static_cast<int>(v);
    }
  }
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    std::string_view port = rest.substr(colon + 1);
    long v = 0;
    if (!parse_digits(port, 65535, &v) || v == 0) {
      return invalid_argument(quoted + "port '" + std::string(port) +
                              "' must be a number in 1..65535");
    }
    out.port = static_cast<int>(v);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return invalid_argument(quoted + "missing host");
  out.host = std::string(rest);
  return out;
}

}  // namespace flight

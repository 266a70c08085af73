// The one parser of Redis URLs (`redis://[[user]:password@]host[:port][/db]`),
// used by the redis connector and the service's redis state backend.
#pragma once

#include <string>
#include <string_view>

#include "flight/base/status.h"

namespace flight {

struct RedisUrl {
  std::string host;
  int port = 6379;       // when the URL has none
  int db = 0;            // when the URL has none
  std::string password;  // empty: no AUTH
};

// Strict: the port, when present, is all digits in 1..65535; the db, when
// present, all digits; the host is not empty. Errors quote the URL (its
// password redacted) and say which part is wrong.
StatusOr<RedisUrl> parse_redis_url(std::string_view url);

// The URL for logs and messages: a password (and user) replaced by "***".
std::string redact_redis_url(std::string_view url);

}  // namespace flight

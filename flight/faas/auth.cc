#include "flight/faas/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <sstream>

#include "flight/base/strings.h"
#include "flight/faas/token_file.h"

namespace flight::faas {

namespace {

std::array<unsigned char, 32> sha256(std::string_view s) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kClient:
      return "client";
    case Role::kEndpoint:
      return "endpoint";
  }
  return "?";
}

Status permission_denied(const std::string& message) {
  return failed_precondition("forbidden: " + message);
}

bool is_permission_denied(const Status& status) {
  return status.code() == StatusCode::kFailedPrecondition &&
         status.message().rfind("forbidden: ", 0) == 0;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Equal-length digests make the comparison independent of both lengths.
  auto da = sha256(a), db = sha256(b);
  return CRYPTO_memcmp(da.data(), db.data(), da.size()) == 0;
}

TokenTable TokenTable::single_admin(const std::string& token) {
  TokenTable t;
  t.entries_.push_back({sha256(token), Principal{}});
  return t;
}

StatusOr<TokenTable> TokenTable::parse(const std::string& text, const std::string& where) {
  std::vector<std::pair<int, std::vector<std::string>>> lines;
  int n = 0;
  for (const auto& raw : split(text, '\n')) {
    ++n;
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#') continue;
    lines.emplace_back(n, words(line));
  }
  if (lines.empty()) return invalid_argument(where + " holds no token");
  TokenTable t;
  // The legacy form: a single bare token is an admin token.
  if (lines.size() == 1 && lines[0].second.size() == 1) {
    return single_admin(lines[0].second[0]);
  }
  for (const auto& [line_no, w] : lines) {
    const std::string at = where + ":" + std::to_string(line_no) + ": ";
    if (w.size() < 2) return invalid_argument(at + "expected 'TOKEN ROLE [NAME]'");
    Principal p;
    if (w[1] == "admin") {
      p.role = Role::kAdmin;
      if (w.size() != 2) return invalid_argument(at + "an admin token takes no name");
    } else if (w[1] == "client" || w[1] == "endpoint") {
      p.role = w[1] == "client" ? Role::kClient : Role::kEndpoint;
      if (w.size() != 3)
        return invalid_argument(at + "a " + w[1] + " token needs exactly one name");
      p.name = w[2];
    } else {
      return invalid_argument(at + "unknown role '" + w[1] + "' (admin, client or endpoint)");
    }
    if (w[0].size() < 16) {
      return invalid_argument(at + "token is shorter than 16 characters");
    }
    auto d = sha256(w[0]);
    for (const auto& e : t.entries_) {
      if (e.digest == d) return invalid_argument(at + "token listed twice");
    }
    t.entries_.push_back({d, std::move(p)});
  }
  return t;
}

StatusOr<TokenTable> TokenTable::load(const std::string& path) {
  FLIGHT_ASSIGN_OR_RETURN(std::string text, read_token_file_text(path));
  return parse(text, "token file '" + path + "'");
}

StatusOr<Principal> TokenTable::authenticate(std::string_view token) const {
  const auto d = sha256(token);
  const Entry* match = nullptr;
  for (const auto& e : entries_) {
    // No early exit: every entry is compared.
    if (CRYPTO_memcmp(e.digest.data(), d.data(), d.size()) == 0) match = &e;
  }
  if (!match) return unauthenticated("invalid bearer token");
  return match->principal;
}

}  // namespace flight::faas

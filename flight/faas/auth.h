// Bearer tokens and their roles for `flight serve` (docs/rest-api.md, "Roles").
//
// A token file holds either one bare token (the legacy form: that token is an
// admin) or one token per line with its role:
//
//   # token                            role      name
//   3f9c0a...                          admin
//   a81e77...                          client    coordinator
//   0c2d94...                          endpoint  edge0
//
// Blank lines and lines starting with '#' are ignored. Roles:
//   admin     every route: manages endpoints, sees every task, /metrics.
//   client    submits tasks and reads, waits on and cancels only the tasks it
//             submitted (its completion streams are namespaced by its name).
//   endpoint  registers only under its own endpoint name, leases only that
//             name's tasks and posts results only for them.
//
// Tokens are compared in constant time: each presented token is hashed
// (SHA-256) and compared with every known token's hash with CRYPTO_memcmp,
// without an early exit, so neither the match position nor a prefix leaks.
//
// Thread safety: a TokenTable is immutable after load; lookups are concurrent.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "flight/base/status.h"

namespace flight::faas {

enum class Role { kAdmin, kClient, kEndpoint };
const char* role_name(Role role);

// Who sent a request.
struct Principal {
  Role role = Role::kAdmin;
  std::string name;  // client or endpoint name; empty for admin

  bool admin() const { return role == Role::kAdmin; }
  // A client's tasks are tagged with this owner; admin tasks with "".
  std::string owner() const { return role == Role::kClient ? name : std::string(); }
};

class TokenTable {
 public:
  // Parses the token-file text; `where` names it in errors ("token file 'x'").
  static StatusOr<TokenTable> parse(const std::string& text, const std::string& where);
  static StatusOr<TokenTable> load(const std::string& path);
  // One admin token (ServiceOptions::token).
  static TokenTable single_admin(const std::string& token);

  // The principal of `token`, or Unauthenticated.
  StatusOr<Principal> authenticate(std::string_view token) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::array<unsigned char, 32> digest;
    Principal principal;
  };
  std::vector<Entry> entries_;
};

// "Authenticated, but not allowed" (HTTP 403). flight::Status has no such
// code, so this is a FailedPrecondition whose message starts "forbidden: ";
// is_permission_denied() tells it apart.
Status permission_denied(const std::string& message);
bool is_permission_denied(const Status& status);

// Constant-time equality of two byte strings (lengths may differ).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace flight::faas

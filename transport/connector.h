// Connector: the byte-level data plane (after ProxyStore's connectors). A
// connector stores opaque byte objects and names them: put() returns the key,
// which is all a consumer needs (with the connector's config()) to fetch the
// object, from this process or any other.
//
// Implementations (built by make_connector in registry.h):
//   memory  in-process map; objects shared without copying
//   file    a directory (shared file system); temp file + atomic rename
//   redis   hiredis; large objects split into chunks and pipelined; TTL leases
//   tcp     direct: each process serves its own objects over Boost.Asio; the key
//           carries the producer's host, port and the size
//   multi   routes each put to one of several connectors by size / tags / priority
//
// Semantics every connector follows (tests/transport/connector_test.cc checks them):
//   - put copies `value` (or, for put_shared, keeps a reference to it); the key is
//     new and unique; objects are immutable once put.
//   - get of a key that does not exist returns OK with std::nullopt: missing is a
//     value, not an error. Errors mean the connector could not answer
//     (Unavailable: server down; DataLoss: object damaged; InvalidArgument: a key
//     that this connector never makes).
//   - evict of a missing key is OK (idempotent). exists never fetches the value.
//   - batch forms are all-or-error and keep the order of their inputs.
//   - config() is a JSON object {kind: ..., ...} such that make_connector(config())
//     in another process (or this one) builds a connector that reads the same
//     objects (memory: same process only).
//   - get returns 64-byte-aligned Bytes the caller may keep as long as it likes.
//
// Thread safety: every method of every connector may be called concurrently.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "transport/buffer.h"

namespace flight::transport {

// Per-put hints. Connectors ignore what they cannot honour and document it.
struct PutHints {
  std::vector<std::string> tags;  // routing hints for `multi`
  std::optional<double> ttl_s;    // lease: the object may vanish after this many seconds
};

class Connector {
 public:
  virtual ~Connector() = default;

  // "memory", "file", "redis", "tcp", "multi".
  virtual std::string kind() const = 0;

  // Stores a copy of `value`; returns its key.
  virtual StatusOr<std::string> put(ByteView value, const PutHints& hints = {}) = 0;

  // As put(), but the connector may keep `value` itself instead of copying it
  // (memory and tcp do). The default copies through put().
  virtual StatusOr<std::string> put_shared(Bytes value, const PutHints& hints = {});

  // The object, or std::nullopt when no object has this key (or its lease expired).
  virtual StatusOr<std::optional<Bytes>> get(const std::string& key) = 0;

  virtual StatusOr<bool> exists(const std::string& key) = 0;

  // Removes the object; OK when it does not exist.
  virtual Status evict(const std::string& key) = 0;

  // Defaults loop over put()/get(); connectors override them to pipeline.
  virtual StatusOr<std::vector<std::string>> put_batch(const std::vector<ByteView>& values,
                                                       const PutHints& hints = {});
  virtual StatusOr<std::vector<std::optional<Bytes>>> get_batch(
      const std::vector<std::string>& keys);

  // Self-describing configuration; see the class comment.
  virtual nlohmann::json config() const = 0;
};

}  // namespace flight::transport

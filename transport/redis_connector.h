// The `redis` connector (hiredis against a real redis-server).
//
// An object of at most chunk_bytes is stored whole under one key "<prefix><key>"
// (a 29-byte "flight2 <size>" header, then the bytes): a put is one SET, so a
// reader sees nothing or all of it, and a get is one GET received straight into
// the aligned destination. A larger object is stored as ceil(N / chunk_bytes)
// chunk keys "<prefix><key>:<i>" plus a small meta record "flight1 <size>
// <chunk> <count>" under "<prefix><key>", written last, so a reader that finds
// the meta finds every chunk. Puts pipeline every chunk in one write (gathered
// straight from the caller's memory); gets read the meta, then keep a sliding
// window of chunk GETs in flight and receive each chunk directly into the
// destination, so a 64 MiB object costs one copy out of the socket and the
// server works on chunk i+1 while the client reads chunk i (a small window also
// bounds the reply memory redis buffers per connection).
//
// TTL hints become PX leases on every key of the object. A server that cannot be
// reached gives Unavailable naming host:port; each blocking socket call is
// bounded by timeout_s (DeadlineExceeded). Connections come from a pool, so
// concurrent calls use separate connections; a pooled connection that fails is
// dropped and the call retried once on a fresh one.
//
//   {kind: redis, host: 127.0.0.1, port: 6379, db: 0, password: "", prefix: "flight:",
//    chunk_bytes: "4MiB", window: 2, timeout_s: 30, pool_size: 8}
//   or {kind: redis, url: "redis://[:password@]host:port[/db]"}
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "transport/connector.h"

namespace flight::transport {

struct RedisConnectorOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string password;  // AUTH when non-empty (travels in config(): Refs carry it)
  std::string prefix = "flight:";
  uint64_t chunk_bytes = 4ull << 20;        // value bytes per redis key
  int window = 2;                           // chunk GETs in flight per get
  double timeout_s = 30;                    // connect and per-socket-call bound
  int pool_size = 8;                        // idle connections kept
  uint64_t max_object_bytes = 64ull << 30;  // larger meta sizes are treated as corrupt

  Status validate() const;
  // Accepts the keys above, or `url` in place of host/port/db/password.
  static StatusOr<RedisConnectorOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

StatusOr<std::unique_ptr<Connector>> make_redis_connector(const RedisConnectorOptions& options);

}  // namespace flight::transport

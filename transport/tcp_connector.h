// The `tcp` connector: direct, peer to peer. Each process that puts serves its
// own objects from a Boost.Asio server (started on the first put, one per
// process and bind address); the key "<host>:<port>/<size>/<id>" names the
// producer, so a consumer in any process pulls the object straight from it.
//
// Wire protocol (little-endian, length-prefixed frames, persistent connections):
//   request  16 bytes: u32 'FLTQ', u8 op (1 get, 2 exists, 3 evict), 3 zero,
//            u32 key_len, u32 0; then the key bytes
//   response 16 bytes: u32 'FLTR', u8 status (0 ok, 1 not found, 2 error), 3 zero,
//            u64 payload_len; then the payload (the object, or an error message)
// The client receives the payload directly into the aligned destination buffer.
//
// Timeouts: the client bounds every blocking socket call by timeout_s; the
// server closes a connection that stalls mid-frame for timeout_s or stays idle
// for idle_timeout_s. A pooled connection the server closed is replaced and the
// request retried once. Objects live until evicted or their TTL lease expires,
// and at most as long as the process (and a connector of it) lives.
//
// With local_shortcut (default), a get of an object served by this process
// returns the stored buffer without touching a socket.
//
//   {kind: tcp, host: 127.0.0.1, port: 0, advertise_host: "", timeout_s: 30}
//   port 0 = any free port; host is the bind address; advertise_host (default:
//   host, or the host name when binding 0.0.0.0) is what keys carry.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "transport/connector.h"

namespace flight::transport {

struct TcpConnectorOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string advertise_host;
  double timeout_s = 30;
  double idle_timeout_s = 300;
  int io_threads = 2;
  int max_connections = 1024;
  int pool_size = 8;  // idle client connections kept per peer
  bool local_shortcut = true;
  uint64_t max_object_bytes = 64ull << 30;

  Status validate() const;
  static StatusOr<TcpConnectorOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

StatusOr<std::unique_ptr<Connector>> make_tcp_connector(const TcpConnectorOptions& options);

// Parts of a tcp key; InvalidArgument for anything else.
struct TcpKey {
  std::string host;
  int port = 0;
  uint64_t size = 0;
  std::string id;
};
StatusOr<TcpKey> parse_tcp_key(const std::string& key);

}  // namespace flight::transport

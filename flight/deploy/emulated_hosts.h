// Emulated hosts: every host of a run in its own Linux network namespace,
// joined to a bridge (in a namespace of its own) through a veth pair whose two
// ends are capped with tc tbf — the host's uplink on its end, its downlink on
// the bridge's end. So bytes between hosts really cross a capped link, and the
// interfaces' own counters say how many did.
//
// Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2; says so otherwise.
// Only ever creates and removes namespaces named "<prefix>-*" and the links
// inside them; never touches the host's own interfaces. Namespaces left by a
// crashed run with the same prefix are removed on the next create().
//
// Addresses: coordinator 10.<net>.0.1, host i 10.<net>.1.<i+1> (/16).
//
// Thread safety: one thread; enter_coordinator() moves only the calling thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flight/base/status.h"

namespace flight::deploy {

struct EmulatedHostsOptions {
  std::string prefix = "flemu";    // namespace names: <prefix>-br, <prefix>-coord, <prefix>-h<i>
  int net = 77;                    // second octet of the 10.x.0.0/16 the namespaces use
  size_t hosts = 4;                // host namespaces
  double coordinator_mbit = 1000;  // the coordinator's link, each direction
  double host_mbit = 100;          // every host's link, each direction

  Status validate() const;
};

// Bytes an interface sent and received (its /sys/class/net/*/statistics).
struct LinkBytes {
  uint64_t rx = 0, tx = 0;
};

class EmulatedHosts {
 public:
  static StatusOr<std::unique_ptr<EmulatedHosts>> create(const EmulatedHostsOptions& options);
  ~EmulatedHosts();  // removes every namespace it created
  EmulatedHosts(const EmulatedHosts&) = delete;
  EmulatedHosts& operator=(const EmulatedHosts&) = delete;

  const EmulatedHostsOptions& options() const { return options_; }
  std::string coordinator_namespace() const { return options_.prefix + "-coord"; }
  std::string coordinator_address() const;
  std::string host_namespace(size_t i) const;
  std::string host_address(size_t i) const;
  // argv prefix that runs a command inside host i's namespace.
  std::vector<std::string> host_command_prefix(size_t i) const;

  // Moves the calling thread into the coordinator's namespace: sockets it
  // opens and threads and processes it starts from now on live there.
  Status enter_coordinator();

  // Per link ("coord", "h0", ...): bytes as seen from the bridge's end of the
  // link (tx = towards that node, rx = from it).
  StatusOr<std::map<std::string, LinkBytes>> link_bytes() const;

  // Removes namespaces "<prefix>-*" (stale ones from a crashed run included).
  static Status remove_all(const std::string& prefix);

 private:
  explicit EmulatedHosts(EmulatedHostsOptions o) : options_(std::move(o)) {}
  Status build();
  EmulatedHostsOptions options_;
  bool built_ = false;
};

}  // namespace flight::deploy

#include "flight/deploy/emulated_hosts.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cmath>
#include <sstream>

#include "flight/base/logging.h"
#include "flight/deploy/run_command.h"

namespace flight::deploy {
namespace {

std::string rate(double mbit) {
  std::ostringstream os;
  os << static_cast<int64_t>(std::llround(mbit * 1000)) << "kbit";
  return os.str();
}

// tbf's bucket must hold at least one timer tick of traffic at the rate.
std::string burst(double mbit) {
  const int64_t bytes = std::max<int64_t>(64 << 10, static_cast<int64_t>(mbit * 1e6 / 8 / 100));
  return std::to_string(bytes) + "b";
}

}  // namespace

Status EmulatedHostsOptions::validate() const {
  if (prefix.empty() || prefix.size() > 8 ||
      prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789") != std::string::npos) {
    return invalid_argument("emulated hosts: prefix must be 1-8 lowercase letters or digits");
  }
  if (net < 0 || net > 255) return invalid_argument("emulated hosts: net must be in [0, 255]");
  if (hosts < 1 || hosts > 250)
    return invalid_argument("emulated hosts: hosts must be in [1, 250]");
  if (!(coordinator_mbit > 0) || !(host_mbit > 0)) {
    return invalid_argument("emulated hosts: link rates must be > 0 Mbit/s");
  }
  return Status::ok();
}

std::string EmulatedHosts::coordinator_address() const {
  return "10." + std::to_string(options_.net) + ".0.1";
}
std::string EmulatedHosts::host_namespace(size_t i) const {
  return options_.prefix + "-h" + std::to_string(i);
}
std::string EmulatedHosts::host_address(size_t i) const {
  return "10." + std::to_string(options_.net) + ".1." + std::to_string(i + 1);
}
std::vector<std::string> EmulatedHosts::host_command_prefix(size_t i) const {
  return {"ip", "netns", "exec", host_namespace(i)};
}

Status EmulatedHosts::remove_all(const std::string& prefix) {
  FLIGHT_ASSIGN_OR_RETURN(std::string list, run_command({"ip", "netns", "list"}));
  std::istringstream in(list);
  std::string line;
  while (std::getline(in, line)) {
    const std::string name = line.substr(0, line.find(' '));
    if (name.rfind(prefix + "-", 0) == 0) {
      auto st = run_command({"ip", "netns", "delete", name});
      if (!st.is_ok()) spdlog::warn("{}", st.status().to_string());
    }
  }
  return Status::ok();
}

StatusOr<std::unique_ptr<EmulatedHosts>> EmulatedHosts::create(const EmulatedHostsOptions& o) {
  FLIGHT_RETURN_IF_ERROR(o.validate());
  if (::geteuid() != 0) {
    return failed_precondition(
        "emulated hosts need root (network namespaces, veth pairs and tc); run as root");
  }
  std::unique_ptr<EmulatedHosts> e(new EmulatedHosts(o));
  FLIGHT_RETURN_IF_ERROR(remove_all(o.prefix));  // a crashed run's leftovers
  e->built_ = true;
  Status st = e->build();
  if (!st.is_ok()) return st;  // the destructor removes what was made
  return e;
}

Status EmulatedHosts::build() {
  const std::string br = options_.prefix + "-br";
  FLIGHT_RETURN_IF_ERROR(run_command({"ip", "netns", "add", br}).status());
  FLIGHT_RETURN_IF_ERROR(
      run_command({"ip", "-n", br, "link", "add", "br0", "type", "bridge"}).status());
  FLIGHT_RETURN_IF_ERROR(run_command({"ip", "-n", br, "link", "set", "br0", "up"}).status());
  // One node: its namespace, a veth whose "eth0" end is in it and whose
  // "<link>" end is on the bridge, the address, and both ends capped.
  auto node = [&](const std::string& ns, const std::string& link, const std::string& addr,
                  double mbit) -> Status {
    FLIGHT_RETURN_IF_ERROR(run_command({"ip", "netns", "add", ns}).status());
    FLIGHT_RETURN_IF_ERROR(run_command({"ip", "-n", br, "link", "add", link, "type", "veth", "peer",
                                        "name", "eth0", "netns", ns})
                               .status());
    FLIGHT_RETURN_IF_ERROR(
        run_command({"ip", "-n", br, "link", "set", link, "master", "br0"}).status());
    FLIGHT_RETURN_IF_ERROR(run_command({"ip", "-n", br, "link", "set", link, "up"}).status());
    FLIGHT_RETURN_IF_ERROR(
        run_command({"ip", "-n", ns, "addr", "add", addr + "/16", "dev", "eth0"}).status());
    FLIGHT_RETURN_IF_ERROR(run_command({"ip", "-n", ns, "link", "set", "eth0", "up"}).status());
    FLIGHT_RETURN_IF_ERROR(run_command({"ip", "-n", ns, "link", "set", "lo", "up"}).status());
    for (const auto& [where, dev] : {std::pair<std::string, std::string>{ns, "eth0"}, {br, link}}) {
      FLIGHT_RETURN_IF_ERROR(
          run_command({"tc", "-n", where, "qdisc", "add", "dev", dev, "root", "tbf", "rate",
                       rate(mbit), "burst", burst(mbit), "latency", "200ms"})
              .status());
    }
    return Status::ok();
  };
  FLIGHT_RETURN_IF_ERROR(
      node(coordinator_namespace(), "coord", coordinator_address(), options_.coordinator_mbit));
  for (size_t i = 0; i < options_.hosts; ++i) {
    FLIGHT_RETURN_IF_ERROR(
        node(host_namespace(i), "h" + std::to_string(i), host_address(i), options_.host_mbit));
  }
  return Status::ok();
}

EmulatedHosts::~EmulatedHosts() {
  if (built_) {
    Status st = remove_all(options_.prefix);
    if (!st.is_ok()) spdlog::warn("{}", st.to_string());
  }
}

Status EmulatedHosts::enter_coordinator() {
  const std::string path = "/var/run/netns/" + coordinator_namespace();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unavailable("emulated hosts: cannot open " + path);
  const int rc = ::setns(fd, CLONE_NEWNET);
  ::close(fd);
  if (rc != 0)
    return unavailable("emulated hosts: setns into " + coordinator_namespace() + " failed");
  return Status::ok();
}

StatusOr<std::map<std::string, LinkBytes>> EmulatedHosts::link_bytes() const {
  // `ip netns exec` mounts the namespace's own /sys, so these are the bridge
  // namespace's interfaces.
  FLIGHT_ASSIGN_OR_RETURN(
      std::string out,
      run_command({"ip", "netns", "exec", options_.prefix + "-br", "sh", "-c",
                   "for d in /sys/class/net/*; do echo ${d##*/} $(cat $d/statistics/rx_bytes) "
                   "$(cat $d/statistics/tx_bytes); done"}));
  std::map<std::string, LinkBytes> links;
  std::istringstream in(out);
  std::string name;
  LinkBytes b;
  while (in >> name >> b.rx >> b.tx) {
    if (name == "coord" || (name.size() > 1 && name[0] == 'h')) links[name] = b;
  }
  return links;
}

}  // namespace flight::deploy

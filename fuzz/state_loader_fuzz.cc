// libFuzzer target: the REST service restoring its tables from a (hostile or
// corrupted) Redis journal. The input is the journal, one record per line:
//   T <task document>   E <endpoint document>   I <key> <idempotency document>
// load() must skip what it cannot read and the service must then work:
// sweep, metrics, a submit and a lease never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "flight/base/check.h"
#include "flight/base/strings.h"
#include "flight/base/time.h"
#include "flight/faas/service_state.h"
#include "flight/faas/state_backend.h"

using namespace flight;
using namespace flight::faas;

namespace {

// A backend whose journal is the fuzz input; writes are accepted and dropped.
class JournalBackend final : public StateBackend {
 public:
  explicit JournalBackend(Snapshot snap) : snap_(std::move(snap)) {}
  Status put_tasks(const std::vector<std::pair<std::string, std::string>>&) override {
    return Status::ok();
  }
  Status erase_tasks(const std::vector<std::string>&) override { return Status::ok(); }
  Status put_endpoint(const std::string&, const std::string&) override { return Status::ok(); }
  Status erase_endpoint(const std::string&) override { return Status::ok(); }
  Status put_idempotency(const std::string&, const std::string&) override { return Status::ok(); }
  Status erase_idempotency(const std::vector<std::string>&) override { return Status::ok(); }
  StatusOr<Snapshot> load() override { return snap_; }
  std::string describe() const override { return "fuzz"; }
  bool durable() const override { return true; }
  StatusOr<bool> hold_leadership(const std::string&, double) override { return true; }
  Status drop_leadership(const std::string&) override { return Status::ok(); }
  void fence(const std::string&) override {}
  bool fenced_out() const override { return false; }

 private:
  Snapshot snap_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  StateBackend::Snapshot snap;
  for (const auto& line :
       split(std::string_view(reinterpret_cast<const char*>(data), size), '\n')) {
    if (line.size() < 2 || line[1] != ' ') continue;
    std::string rest = line.substr(2);
    if (line[0] == 'T') {
      snap.tasks.push_back(rest);
    } else if (line[0] == 'E') {
      snap.endpoints.push_back(rest);
    } else if (line[0] == 'I') {
      auto sp = rest.find(' ');
      if (sp != std::string::npos)
        snap.idempotency.emplace_back(rest.substr(0, sp), rest.substr(sp + 1));
    }
  }
  StateLimits limits;
  limits.max_queue_per_endpoint = 1000;
  ServiceState state(limits, std::make_unique<JournalBackend>(std::move(snap)));
  if (!state.load().is_ok()) return 0;
  (void)state.metrics_text();
  auto ep = state.register_endpoint("edge", {"echo"}, nlohmann::json::object());
  std::vector<ServiceState::Submission> subs(1);
  subs[0].spec.endpoint = "edge";
  subs[0].spec.function = "echo";
  (void)state.submit(std::move(subs), "", "", "client");
  auto leased = state.lease_or_wait(ep["id"].get<std::string>(), 100, nullptr);
  FLIGHT_CHECK(leased.is_ok(), "lease after load: " + leased.status().to_string());
  (void)state.wait_tasks_or_wait({"a", "b"}, 10, nullptr);
  (void)state.completions_or_wait("client", 100, nullptr);
  state.sweep(wall_seconds() + 1e7);  // every lease, deadline and result expires
  (void)state.metrics_text();
  return 0;
}

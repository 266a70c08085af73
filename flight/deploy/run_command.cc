#include "flight/deploy/run_command.h"

#include <chrono>

#include "flight/base/process.h"

namespace flight::deploy {

StatusOr<std::string> run_command(const std::vector<std::string>& argv,
                                  const std::string& err_log) {
  ProcessOptions po;
  po.argv = argv;
  po.out = Redirect::pipe();
  po.err = err_log.empty() ? Redirect::null() : Redirect::file(err_log, true);
  FLIGHT_ASSIGN_OR_RETURN(auto p, Process::spawn(std::move(po)));
  std::string out;
  while (true) {
    auto line = p->read_line(std::chrono::seconds(60));
    if (!line.is_ok()) break;  // closed (exited) or silent for a minute
    out += *line + "\n";
  }
  const int rc = p->wait();
  if (rc != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    return unavailable("`" + cmd + "` exited with " + std::to_string(rc) +
                       (err_log.empty() ? "" : ": " + read_text_file(err_log)));
  }
  return out;
}

}  // namespace flight::deploy

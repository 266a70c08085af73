#include "tests/learning/learning_test_util.h"

#include <unistd.h>

#include <vector>

#include "tests/support/process.h"

namespace flight::learning::testing {

std::string test_data(const std::string& name) {
  return std::string(FLIGHT_SOURCE_DIR) + "/tests/data/learning/" + name;
}

int run_python(const std::string& script, const std::vector<std::string>& args, std::string* out,
               std::string* err) {
  flight::testing::TempDir dir;
  std::vector<std::string> argv = {"/usr/bin/python3", "-c", script};
  argv.insert(argv.end(), args.begin(), args.end());
  flight::testing::Subprocess::Options opts;
  opts.stdout_path = dir.file("stdout");
  opts.stderr_path = dir.file("stderr");
  flight::testing::Subprocess proc(argv, opts);
  int code = proc.wait();
  *out = flight::testing::read_file(opts.stdout_path);
  *err = flight::testing::read_file(opts.stderr_path);
  return code;
}

bool python_torch_available() {
  static const bool available = [] {
    if (::access("/usr/bin/python3", X_OK) != 0) return false;
    std::string out, err;
    return run_python("import torch", {}, &out, &err) == 0;
  }();
  return available;
}

}  // namespace flight::learning::testing

// Helpers shared by the learning tests.
#pragma once

#include <string>
#include <vector>

namespace flight::learning::testing {

// Path of a file under tests/data/learning.
std::string test_data(const std::string& name);

// True when /usr/bin/python3 can `import torch`. Tests that need it skip
// loudly when it cannot (scripts/setup.sh installs python3-torch, so CI runs them).
bool python_torch_available();

// Runs /usr/bin/python3 -c `script` args...; returns the exit code and fills
// *out with stdout and *err with stderr.
int run_python(const std::string& script, const std::vector<std::string>& args, std::string* out,
               std::string* err);

}  // namespace flight::learning::testing

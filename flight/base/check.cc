#include "flight/base/check.h"

namespace flight {

void check_failed(const char* file, int line, const char* condition, const std::string& message) {
  std::string what = std::string(file) + ":" + std::to_string(line) + ": check failed: " + condition;
  if (!message.empty()) what += ": " + message;
  throw CheckError(what);
}

}  // namespace flight

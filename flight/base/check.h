// FLIGHT_CHECK: broken invariants (programming errors) throw CheckError with the
// file and line. Expected failures use Status instead (status.h).
#pragma once

#include <stdexcept>
#include <string>

namespace flight {

class CheckError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

[[noreturn]] void check_failed(const char* file, int line, const char* condition,
                               const std::string& message);

}  // namespace flight

#define FLIGHT_CHECK(cond, ...)                                                     \
  do {                                                                              \
    if (!(cond)) ::flight::check_failed(__FILE__, __LINE__, #cond, std::string{__VA_ARGS__}); \
  } while (0)

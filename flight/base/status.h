// Status and StatusOr<T>: the return type of every operation that can fail for
// reasons outside the program's control (bad input, missing file, dead peer).
// Broken invariants are not Statuses: they throw through FLIGHT_CHECK (check.h).
//
// Thread safety: values; copy freely.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include "flight/base/check.h"

namespace flight {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // malformed input: config, file, request body
  kNotFound,         // a key, node, file or route that does not exist
  kAlreadyExists,
  kFailedPrecondition,
  kOutOfRange,
  kDataLoss,     // checksum mismatch, truncated payload
  kUnavailable,  // peer or server unreachable; retrying may help
  kDeadlineExceeded,
  kCancelled,
  kResourceExhausted,  // queue full, size limit
  kUnauthenticated,
  kInternal,
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "CodeName: message" (just "OK" when ok).
  std::string to_string() const;

  // Returns a copy whose message is "context: message"; keeps the code.
  Status with_context(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

std::ostream& operator<<(std::ostream& os, const Status& s);

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status already_exists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status failed_precondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status out_of_range(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status data_loss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status deadline_exceeded(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status resource_exhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status unauthenticated(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A T or the Status saying why there is none. Accessing value() of an error
// StatusOr is a broken invariant and throws CheckError.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    FLIGHT_CHECK(!status_.is_ok(), "StatusOr constructed from an OK Status without a value");
  }
  // Implicit from anything convertible to T (e.g. unique_ptr<Derived> for unique_ptr<Base>).
  template <typename U = T,
            typename = std::enable_if_t<std::is_convertible_v<U&&, T> &&
                                        !std::is_same_v<std::decay_t<U>, Status> &&
                                        !std::is_same_v<std::decay_t<U>, StatusOr>>>
  StatusOr(U&& value) : value_(T(std::forward<U>(value))) {}  // NOLINT(google-explicit-constructor)

  bool is_ok() const { return status_.is_ok(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    check_value();
    return *value_;
  }
  const T& value() const& {
    check_value();
    return *value_;
  }
  T&& value() && {
    check_value();
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void check_value() const {
    FLIGHT_CHECK(value_.has_value(), "value() of an error StatusOr: " + status_.to_string());
  }
  Status status_;
  std::optional<T> value_;
};

}  // namespace flight

#define FLIGHT_STATUS_CONCAT_INNER(a, b) a##b
#define FLIGHT_STATUS_CONCAT(a, b) FLIGHT_STATUS_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` is an error.
#define FLIGHT_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::flight::Status _flight_status = (expr);     \
    if (!_flight_status.is_ok()) return _flight_status; \
  } while (0)

// `lhs = value of expr` or return its Status. lhs may declare: FLIGHT_ASSIGN_OR_RETURN(auto x, f());
#define FLIGHT_ASSIGN_OR_RETURN(lhs, expr) \
  FLIGHT_ASSIGN_OR_RETURN_IMPL(FLIGHT_STATUS_CONCAT(_flight_statusor_, __LINE__), lhs, expr)
#define FLIGHT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.is_ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

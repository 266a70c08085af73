// Bearer tokens kept in files (service, endpoint agent and REST client).
#pragma once

#include <string>

#include "flight/base/status.h"

namespace flight::faas {

// Reads a bearer token from a file (surrounding whitespace trimmed); an empty
// file, or one holding more than one word, is an error.
StatusOr<std::string> read_token_file(const std::string& path);

}  // namespace flight::faas

// Bearer tokens kept in files (service, endpoint agent and REST client).
#pragma once

#include <string>

#include "flight/base/status.h"

namespace flight::faas {

// The whole text of a token file; NotFound naming the file when it cannot be
// read. The service parses it as a token table (auth.h: one token per line
// with its role).
StatusOr<std::string> read_token_file_text(const std::string& path);

// A client's (endpoint agent, REST client) bearer token from a file
// (surrounding whitespace trimmed); an empty file, or one holding more than one
// word, is an error.
StatusOr<std::string> read_token_file(const std::string& path);

}  // namespace flight::faas

#include "flight/faas/token_file.h"

#include <fstream>
#include <sstream>

#include "flight/base/strings.h"

namespace flight::faas {

StatusOr<std::string> read_token_file_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found("token file '" + path + "' cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

StatusOr<std::string> read_token_file(const std::string& path) {
  FLIGHT_ASSIGN_OR_RETURN(std::string text, read_token_file_text(path));
  std::string token = trim(text);
  if (token.empty()) return invalid_argument("token file '" + path + "' is empty");
  if (token.find_first_of(" \t\r\n") != std::string::npos) {
    return invalid_argument("token file '" + path + "' must hold one token without whitespace");
  }
  return token;
}

}  // namespace flight::faas

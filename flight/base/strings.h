// Small string utilities shared by parsers and error messages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flight {

std::vector<std::string> split(std::string_view s, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string trim(std::string_view s);
std::string to_lower(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
bool ends_with(std::string_view s, std::string_view suffix);

// Levenshtein distance, for "did you mean".
size_t edit_distance(std::string_view a, std::string_view b);

// " (did you mean 'x'?)" for the closest candidate within a small distance, or "".
std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates);

// "1.5 MiB", "64 B".
std::string human_bytes(double bytes);

// Parses "64", "1K", "1KB", "1MiB", "256M", "2G" (powers of 1024); false on junk.
bool parse_bytes(std::string_view s, uint64_t* out);

// Lowercase hex of n bytes (binary values inside JSON messages).
std::string hex_encode(const uint8_t* data, size_t n);
// The bytes of an even-length hex string (either case); false on junk.
bool hex_decode(std::string_view hex, std::vector<uint8_t>* out);

}  // namespace flight

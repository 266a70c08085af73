// Random identifiers (task ids, object keys). Not cryptographic: unique with
// overwhelming probability, cheap to make from any thread.
#pragma once

#include <string>

namespace flight {

// `n_hex` lowercase hex characters from a per-thread generator seeded from
// std::random_device.
std::string random_hex(size_t n_hex = 32);

// "<prefix>-<24 hex>".
std::string new_id(const std::string& prefix);

}  // namespace flight

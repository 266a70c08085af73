// Test helper: the rows of a finished run's rounds.csv.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "flight/engine/federation.h"
#include "flight/engine/metrics.h"

namespace flight::engine {

// Empty (with a test failure) when the file is missing or malformed.
inline std::vector<RoundRow> rounds(const RunSummary& s) {
  auto rows = read_rounds_csv(s.output_dir + "/rounds.csv");
  EXPECT_TRUE(rows.is_ok()) << rows.status();
  return rows.is_ok() ? *rows : std::vector<RoundRow>{};
}

}  // namespace flight::engine

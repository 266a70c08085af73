// `flight data show CONFIG`: reads the config through the one experiment-config
// parser (as `flight run` does) and partitions exactly as a run would.
#include <gtest/gtest.h>

#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "tests/support/process.h"

namespace flight {
namespace {

struct Result {
  int code;
  std::string out, err;
};

Result flight_cli(const testing::TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), FLIGHT_BINARY);
  testing::Subprocess::Options o;
  o.stdout_path = dir.file("out.txt");
  o.stderr_path = dir.file("err.txt");
  testing::Subprocess p(args, o);
  int code = p.wait();
  return {code, testing::read_file(o.stdout_path), testing::read_file(o.stderr_path)};
}

TEST(DataShow, ReadsTheMainExampleConfig) {
  testing::TempDir dir;
  auto r = flight_cli(
      dir,
      {"data", "show", std::string(FLIGHT_SOURCE_DIR) + "/configs/fmnist-3tier.yaml", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["workers"], 32);  // 4 aggregators x 8 workers in topologies/3tier.yaml
  EXPECT_EQ(j["seed"], 1);
  EXPECT_EQ(j["data"]["dataset"], "fashion_mnist");
  EXPECT_EQ(j["data"]["partition"]["method"], "dirichlet");
  ASSERT_EQ(j["histograms"].size(), 32u);
  int64_t total = 0;
  for (const auto& h : j["histograms"]) {
    for (const auto& c : h) total += c.get<int64_t>();
  }
  EXPECT_EQ(total, j["train_samples"].get<int64_t>());
}

TEST(DataShow, FlagsOverrideTheConfig) {
  testing::TempDir dir;
  auto r = flight_cli(
      dir, {"data", "show", std::string(FLIGHT_SOURCE_DIR) + "/configs/fmnist-3tier.yaml",
            "--workers", "4", "--method", "iid", "--seed", "7", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["workers"], 4);
  EXPECT_EQ(j["seed"], 7);
  EXPECT_EQ(j["data"]["partition"]["method"], "iid");
  EXPECT_EQ(j["histograms"].size(), 4u);
}

TEST(DataShow, ConfigErrorsNameFileLineAndKey) {
  testing::TempDir dir;
  std::ofstream(dir.file("c.yaml")) << "name: t\ntopology: {generate: flat, workers: 3}\n"
                                    << "data: {dataset: synthetic, synthetic_samples: 300}\n"
                                    << "sed: 4\n";
  auto bad = flight_cli(dir, {"data", "show", dir.file("c.yaml")});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find(dir.file("c.yaml") + ":4:"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("did you mean 'seed'"), std::string::npos) << bad.err;

  std::ofstream(dir.file("g.yaml")) << "name: t\ntopology: {generate: flat, workers: 3}\n"
                                    << "data: {dataset: synthetic, synthetic_samples: 300}\n";
  auto generated = flight_cli(dir, {"data", "show", dir.file("g.yaml"), "--json"});
  ASSERT_EQ(generated.code, 0) << generated.err;
  EXPECT_EQ(nlohmann::json::parse(generated.out)["workers"], 3);
}

}  // namespace
}  // namespace flight

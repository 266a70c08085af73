// ExperimentConfig: defaults, overrides, and errors that name file, line and key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "flight/engine/config.h"
#include "flight/engine/yaml_json.h"
#include "tests/support/process.h"

namespace flight::engine {
namespace {

std::string write(const testing::TempDir& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir.file(name)) << text;
  return dir.file(name);
}

const char* kMinimal = R"(name: t
topology: topo.yaml
rounds: 3
)";

TEST(Config, DefaultsAreFilledIn) {
  testing::TempDir dir;
  auto c = ExperimentConfig::load(write(dir, "c.yaml", kMinimal));
  ASSERT_TRUE(c.is_ok()) << c.status();
  EXPECT_EQ(c->name, "t");
  EXPECT_EQ(c->rounds, 3);
  EXPECT_EQ(c->mode, Mode::kSync);
  EXPECT_EQ(c->control.kind, ControlKind::kLocal);
  EXPECT_EQ(c->threads, 2);
  EXPECT_EQ(c->output.dir, "runs/t");
  EXPECT_EQ(c->data_plane.connector["kind"], "memory");
  EXPECT_EQ(c->topology.file, dir.file("topo.yaml"));  // relative to the config file
  EXPECT_EQ(c->strategy.name, "fedavg");
}

TEST(Config, CompressionReadsEncodingsAndRefusesTopKWithRobustStrategies) {
  testing::TempDir dir;
  auto c = ExperimentConfig::load(write(
      dir, "c.yaml", std::string(kMinimal) + "compression: {encoding: int8, block_size: 64}\n"));
  ASSERT_TRUE(c.is_ok()) << c.status();
  EXPECT_EQ(c->compression.encoding, transport::Encoding::kInt8);
  EXPECT_EQ(c->compression.block_size, 64);
  auto back = ExperimentConfig::from_json(c->to_json());
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_EQ(back->compression.encoding, transport::Encoding::kInt8);
  auto topk = ExperimentConfig::load(
      write(dir, "t.yaml", std::string(kMinimal) + "compression: {encoding: topk}\n"));
  ASSERT_TRUE(topk.is_ok()) << topk.status();
  EXPECT_EQ(topk->compression.encoding, transport::Encoding::kTopK);
  // Sparse deltas and a coordinate-wise median do not mix (tests/engine/topk_test.cc
  // has the other compositions).
  auto median = ExperimentConfig::load(write(
      dir, "m.yaml", std::string(kMinimal) + "compression: {encoding: topk}\nstrategy: median\n"));
  ASSERT_FALSE(median.is_ok());
  EXPECT_NE(median.status().message().find(":4:"), std::string::npos) << median.status();
  EXPECT_NE(median.status().message().find("deltas"), std::string::npos) << median.status();
  auto bad = ExperimentConfig::load(
      write(dir, "b.yaml", std::string(kMinimal) + "compression: {encoding: int4}\n"));
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("int8"), std::string::npos) << bad.status();
}

TEST(Config, UnknownKeyNamesKeyLineAndSuggestion) {
  testing::TempDir dir;
  auto path = write(dir, "c.yaml", "name: t\ntopology: x.yaml\nrouns: 3\n");
  auto c = ExperimentConfig::load(path);
  ASSERT_FALSE(c.is_ok());
  const std::string m = c.status().message();
  EXPECT_NE(m.find(path + ":3:"), std::string::npos) << m;
  EXPECT_NE(m.find("'rouns'"), std::string::npos) << m;
  EXPECT_NE(m.find("did you mean 'rounds'"), std::string::npos) << m;
}

TEST(Config, NestedUnknownKeyAndWrongTypeHaveLines) {
  testing::TempDir dir;
  auto c = ExperimentConfig::load(
      write(dir, "c.yaml", "name: t\ntopology: x.yaml\nfaults:\n  deadline: 3\n"));
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find(":4:"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("did you mean 'round_deadline_s'"), std::string::npos)
      << c.status();
  auto d =
      ExperimentConfig::load(write(dir, "d.yaml", "name: t\ntopology: x.yaml\nrounds: many\n"));
  ASSERT_FALSE(d.is_ok());
  EXPECT_NE(d.status().message().find(":3:"), std::string::npos) << d.status();
  EXPECT_NE(d.status().message().find("rounds"), std::string::npos) << d.status();
}

TEST(Config, LayerSectionErrorsCarryTheSectionLine) {
  testing::TempDir dir;
  auto c = ExperimentConfig::load(
      write(dir, "c.yaml", "name: t\ntopology: x.yaml\n\ntrain:\n  lr: -1\n"));
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find(":4:"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("train"), std::string::npos) << c.status();
  auto s = ExperimentConfig::load(
      write(dir, "s.yaml", "name: t\ntopology: x.yaml\nstrategy: {name: fedvag}\n"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("fedavg"), std::string::npos) << s.status();
}

TEST(Config, OverridesApplyWithYamlTypes) {
  testing::TempDir dir;
  auto c = ExperimentConfig::load(write(dir, "c.yaml", kMinimal),
                                  {"rounds=7", "train.lr=0.25", "strategy.participation=0.5",
                                   "control.rest.url=http://127.0.0.1:1"});
  ASSERT_TRUE(c.is_ok()) << c.status();
  EXPECT_EQ(c->rounds, 7);
  EXPECT_DOUBLE_EQ(c->train.lr, 0.25);
  EXPECT_DOUBLE_EQ(c->strategy.participation, 0.5);
  EXPECT_EQ(c->control.kind, ControlKind::kRest);
  auto bad = ExperimentConfig::load(write(dir, "d.yaml", kMinimal), {"rounds"});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("key=value"), std::string::npos);
  auto typo = ExperimentConfig::load(write(dir, "e.yaml", kMinimal), {"roundz=2"});
  ASSERT_FALSE(typo.is_ok());
  EXPECT_NE(typo.status().message().find("did you mean 'rounds'"), std::string::npos);
}

TEST(Config, ResolvedConfigLoadsBackToTheSameConfig) {
  testing::TempDir dir;
  auto c = ExperimentConfig::load(write(dir, "c.yaml", R"(name: rt
seed: 9
topology: {generate: balanced, branching: 2, height: 2}
model: {name: mlp}
data: {dataset: synthetic, partition: {method: dirichlet, alpha: 0.3}}
train: {epochs: 2, lr: 0.1}
strategy: {name: fedprox, params: {mu: 0.01}}
faults: {round_deadline_s: 5, min_fraction: 0.5, on_insufficient: retry}
)"));
  ASSERT_TRUE(c.is_ok()) << c.status();
  auto text = json_to_yaml(c->to_json());
  auto doc = parse_yaml_document(text, "resolved");
  ASSERT_TRUE(doc.is_ok()) << doc.status() << "\n" << text;
  auto back = ExperimentConfig::from_json(doc->value, "resolved", dir.path());
  ASSERT_TRUE(back.is_ok()) << back.status() << "\n" << text;
  EXPECT_EQ(back->to_json(), c->to_json()) << text;
  // Enumerated settings are written back as the names they were read from.
  const auto j = c->to_json();
  EXPECT_EQ(j["mode"], "sync");
  EXPECT_EQ(j["clock"], "real");
  EXPECT_EQ(j["control"], "local");
  EXPECT_EQ(j["faults"]["on_insufficient"], "retry");
  EXPECT_EQ(c->faults.on_insufficient, OnInsufficient::kRetry);
}

// A run directory's config.yaml is written elsewhere than the config it
// resolves: its file paths must not depend on the original config's directory.
TEST(Config, ResolvedConfigLoadsBackFromAnotherDirectory) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.file("cfg/sub"));
  std::filesystem::create_directories(dir.file("runs/x"));
  write(dir, "cfg/sub/topo.yaml", "c: {kind: coordinator, children: [w]}\nw: {kind: worker}\n");
  auto c = ExperimentConfig::load(write(dir, "cfg/c.yaml", R"(name: t
topology: sub/topo.yaml
control: {rest: {url: "http://127.0.0.1:1", token_file: ../token}}
)"));
  ASSERT_TRUE(c.is_ok()) << c.status();
  EXPECT_EQ(c->topology.file, dir.file("cfg/sub/topo.yaml"));
  EXPECT_EQ(c->control.token_file, dir.file("token"));
  write(dir, "runs/x/config.yaml", json_to_yaml(c->to_json()));
  auto back = load_run_config(dir.file("runs/x"));
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_EQ(back->to_json(), c->to_json());
  EXPECT_TRUE(config_differences(*c, *back).empty());
  auto missing = load_run_config(dir.file("runs"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("no config.yaml"), std::string::npos);
}

TEST(Config, DifferencesNameEveryChangedKeyButNotTheOutputDirectory) {
  testing::TempDir dir;
  const std::string path = write(dir, "c.yaml", kMinimal);
  auto was = ExperimentConfig::load(path);
  auto now = ExperimentConfig::load(
      path, {"rounds=6", "train.lr=0.5", "eval.every=2", "output.dir=/elsewhere"});
  ASSERT_TRUE(was.is_ok()) << was.status();
  ASSERT_TRUE(now.is_ok()) << now.status();
  const auto d = config_differences(*was, *now);
  ASSERT_EQ(d.size(), 3u) << ::testing::PrintToString(d);
  EXPECT_EQ(d[0], "eval.every: 1 -> 2");
  EXPECT_EQ(d[1], "rounds: 3 -> 6");
  EXPECT_EQ(d[2].rfind("train.lr: ", 0), 0u) << d[2];
  EXPECT_NE(d[2].find("-> 0.5"), std::string::npos) << d[2];
  EXPECT_TRUE(config_differences(*was, *was).empty());
}

TEST(Config, EnumeratedSettingsReadTheirNames) {
  testing::TempDir dir;
  auto c = ExperimentConfig::load(write(dir, "c.yaml",
                                        std::string(kMinimal) +
                                            "mode: async\nclock: virtual\nstrategy: fedasync\n"
                                            "control: {rest: {url: 'http://127.0.0.1:1'}}\n"));
  ASSERT_TRUE(c.is_ok()) << c.status();
  EXPECT_EQ(c->mode, Mode::kAsync);
  EXPECT_EQ(c->clock, Clock::kVirtual);
  EXPECT_EQ(c->control.kind, ControlKind::kRest);
  EXPECT_EQ(c->to_json()["mode"], "async");
  EXPECT_EQ(c->to_json()["clock"], "virtual");
  EXPECT_EQ(c->to_json()["control"]["rest"]["url"], "http://127.0.0.1:1");
  auto bad =
      ExperimentConfig::load(write(dir, "d.yaml", std::string(kMinimal) + "clock: virtul\n"));
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find(":4: clock: expected one of real, virtual, got 'virtul' "
                                        "(did you mean 'virtual'?)"),
            std::string::npos)
      << bad.status();
}

TEST(Config, InvalidValuesAreRejected) {
  testing::TempDir dir;
  for (const char* extra : {"rounds: 0\n", "mode: asynch\n", "threads: 0\n",
                            "faults: {min_fraction: 0}\n", "faults: {on_insufficient: pray}\n",
                            "control: carrier-pigeon\n", "control: {rest: {}}\n"}) {
    auto c = ExperimentConfig::load(
        write(dir, "c.yaml", std::string("name: t\ntopology: x.yaml\n") + extra));
    ASSERT_FALSE(c.is_ok()) << extra;
    EXPECT_EQ(c.status().message().find("duplicate"), std::string::npos) << c.status();
  }
  auto empty = ExperimentConfig::load(write(dir, "e.yaml", ""));
  EXPECT_FALSE(empty.is_ok());
  auto list = ExperimentConfig::load(write(dir, "l.yaml", "- a\n- b\n"));
  EXPECT_FALSE(list.is_ok());
  auto missing = ExperimentConfig::load(dir.file("nope.yaml"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace flight::engine

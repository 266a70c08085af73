// OptionReader: types, defaults, required fields, ranges, byte sizes, enums,
// nested objects, unknown keys with "did you mean", paths and source lines.
#include "flight/base/options.h"

#include <gtest/gtest.h>

namespace flight {
namespace {

using nlohmann::json;

enum class Mode { kSync, kAsync };
const EnumNames<Mode> kModes = {{"sync", Mode::kSync}, {"async", Mode::kAsync}};

std::string message_of(const Status& s) { return s.message(); }

TEST(OptionReader, ReadsEveryTypeAndLeavesAbsentFieldsAlone) {
  json j = {{"s", "x"},         {"b", true},     {"i", -3},           {"i32", 7},
            {"u", 12},          {"z", 5},        {"d", 0.25},         {"od", 1.5},
            {"vs", {"a", "b"}}, {"vi", {1, -2}}, {"raw", {{"k", 1}}}, {"whole", 2.0}};
  std::string s = "default";
  bool b = false;
  int64_t i = 0;
  int i32 = 0;
  uint64_t u = 0;
  size_t z = 0;
  double d = 0;
  std::optional<double> od;
  std::vector<std::string> vs;
  std::vector<int64_t> vi;
  json raw;
  int64_t whole = 0;
  std::string untouched = "keep";
  double untouched_d = 9;
  OptionReader r(j, "opts");
  r.optional("s", &s)
      .optional("b", &b)
      .optional("i", &i)
      .optional("i32", &i32)
      .optional("u", &u)
      .optional("z", &z)
      .optional("d", &d)
      .optional("od", &od)
      .optional("vs", &vs)
      .optional("vi", &vi)
      .optional("raw", &raw)
      .optional("whole", &whole)
      .optional("absent", &untouched)
      .optional("absent_d", &untouched_d);
  ASSERT_TRUE(r.finish().is_ok()) << r.finish();
  EXPECT_EQ(s, "x");
  EXPECT_TRUE(b);
  EXPECT_EQ(i, -3);
  EXPECT_EQ(i32, 7);
  EXPECT_EQ(u, 12u);
  EXPECT_EQ(z, 5u);
  EXPECT_EQ(d, 0.25);
  ASSERT_TRUE(od.has_value());
  EXPECT_EQ(*od, 1.5);
  EXPECT_EQ(vs, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(vi, (std::vector<int64_t>{1, -2}));
  EXPECT_EQ(raw, (json{{"k", 1}}));
  EXPECT_EQ(whole, 2);
  EXPECT_EQ(untouched, "keep");
  EXPECT_EQ(untouched_d, 9);
}

TEST(OptionReader, NullIsAbsent) {
  json j = {{"a", nullptr}};
  int64_t a = 4;
  std::optional<double> o;
  OptionReader r(j, "x");
  r.optional("a", &a).optional("a", &o);
  EXPECT_TRUE(r.finish().is_ok());
  EXPECT_EQ(a, 4);
  EXPECT_FALSE(o.has_value());
  EXPECT_FALSE(r.has("a"));
  int64_t need = 0;
  OptionReader q(j, "x");
  q.required("a", &need);
  EXPECT_NE(message_of(q.finish()).find("missing required field 'a'"), std::string::npos);
}

TEST(OptionReader, WrongTypesNameThePathAndTheValue) {
  {
    std::string s;
    const json j_r = json{{"name", 3}};
    OptionReader r(j_r, "model");
    r.optional("name", &s);
    EXPECT_EQ(message_of(r.finish()), "model.name: expected a string, got 3");
  }
  {
    int64_t n = 0;
    const json j_r = json{{"epochs", 1.5}};
    OptionReader r(j_r, "train");
    r.optional("epochs", &n);
    EXPECT_EQ(message_of(r.finish()), "train.epochs: expected an integer, got 1.5");
  }
  {
    uint64_t n = 0;
    const json j_r = json{{"seed", -1}};
    OptionReader r(j_r, "");
    r.optional("seed", &n);
    EXPECT_EQ(message_of(r.finish()), "seed: expected a non-negative integer, got -1");
  }
  {
    int n = 0;
    const json j_r = json{{"port", int64_t{1} << 40}};
    OptionReader r(j_r, "redis");
    r.optional("port", &n);
    EXPECT_NE(message_of(r.finish()).find("32-bit"), std::string::npos);
  }
  {
    bool b = false;
    const json j_r = json{{"debug", "yes"}};
    OptionReader r(j_r, "");
    r.optional("debug", &b);
    EXPECT_EQ(message_of(r.finish()), "debug: expected true or false, got \"yes\"");
  }
  {
    double d = 0;
    const json j_r = json{{"lr", "fast"}};
    OptionReader r(j_r, "train");
    r.optional("lr", &d);
    EXPECT_EQ(message_of(r.finish()), "train.lr: expected a finite number, got \"fast\"");
    const json j_inf = json{{"lr", std::numeric_limits<double>::infinity()}};
    OptionReader inf(j_inf, "train");
    inf.optional("lr", &d);
    EXPECT_FALSE(inf.finish().is_ok());
  }
  {
    std::vector<std::string> v;
    const json j_r = json{{"tags", {"a", 1}}};
    OptionReader r(j_r, "c");
    r.optional("tags", &v);
    EXPECT_NE(message_of(r.finish()).find("c.tags: expected a list of strings"), std::string::npos);
    EXPECT_TRUE(v.empty());  // not half-filled
  }
  {
    std::vector<int64_t> v;
    const json j_r = json{{"counts", {1, "x"}}};
    OptionReader r(j_r, "c");
    r.optional("counts", &v);
    EXPECT_NE(message_of(r.finish()).find("c.counts: expected a list of integers"),
              std::string::npos);
  }
}

TEST(OptionReader, FirstErrorWins) {
  int64_t a = 0, b = 0;
  const json j_r = json{{"a", "x"}, {"b", "y"}};
  OptionReader r(j_r, "o");
  r.optional("a", &a).optional("b", &b);
  EXPECT_NE(message_of(r.finish()).find("o.a:"), std::string::npos);
}

TEST(OptionReader, RequiredFields) {
  std::string url;
  const json j_r = json::object();
  OptionReader r(j_r, "control.rest");
  r.required("url", &url);
  EXPECT_EQ(message_of(r.finish()), "control.rest: missing required field 'url'");
  const json j_ok = json{{"url", "http://x"}};
  OptionReader ok(j_ok, "control.rest");
  ok.required("url", &url);
  EXPECT_TRUE(ok.finish().is_ok());
  EXPECT_EQ(url, "http://x");
  // A misspelt required key: the unknown key (with its suggestion) explains it best.
  const json j_typo = json{{"rul", "http://x"}};
  OptionReader typo(j_typo, "control.rest");
  typo.required("url", &url);
  EXPECT_EQ(message_of(typo.finish()),
            "control.rest: unknown key 'rul' (did you mean 'url'?) (known: url)");
}

TEST(OptionReader, Bytes) {
  uint64_t a = 0, b = 0, c = 0, d = 7;
  const json j_r = json{{"a", 4096}, {"b", "4MiB"}, {"c", "256M"}};
  OptionReader r(j_r, "cache");
  r.bytes("a", &a).bytes("b", &b).bytes("c", &c).bytes("d", &d);
  ASSERT_TRUE(r.finish().is_ok()) << r.finish();
  EXPECT_EQ(a, 4096u);
  EXPECT_EQ(b, 4u << 20);
  EXPECT_EQ(c, 256u << 20);
  EXPECT_EQ(d, 7u);
  for (json bad : {json("lots"), json(-1), json(true)}) {
    uint64_t x = 0;
    const json j_q = json{{"size", bad}};
    OptionReader q(j_q, "cache");
    q.bytes("size", &x);
    EXPECT_NE(message_of(q.finish()).find("cache.size: expected a byte count"), std::string::npos)
        << bad;
  }
  uint64_t x = 0;
  const json j_q = json::object();
  OptionReader q(j_q, "cache");
  q.bytes("size", &x, /*required=*/true);
  EXPECT_FALSE(q.finish().is_ok());
}

TEST(OptionReader, ChoiceReadsEnumsFromNames) {
  Mode m = Mode::kSync;
  const json j_r = json{{"mode", "async"}};
  OptionReader r(j_r, "");
  r.choice("mode", &m, kModes);
  ASSERT_TRUE(r.finish().is_ok());
  EXPECT_EQ(m, Mode::kAsync);
  EXPECT_STREQ(enum_name(Mode::kAsync, kModes), "async");
  EXPECT_STREQ(enum_name(Mode::kSync, kModes), "sync");

  Mode n = Mode::kSync;
  const json j_bad = json{{"mode", "asynch"}};
  OptionReader bad(j_bad, "");
  bad.choice("mode", &n, kModes);
  EXPECT_EQ(message_of(bad.finish()),
            "mode: expected one of sync, async, got 'asynch' (did you mean 'async'?)");
  EXPECT_EQ(n, Mode::kSync);

  std::string staleness = "polynomial";
  const json j_str = json{{"staleness", "hinj"}};
  OptionReader str(j_str, "strategy.params");
  str.choice("staleness", &staleness, {"constant", "polynomial", "hinge"});
  EXPECT_EQ(message_of(str.finish()),
            "strategy.params.staleness: expected one of constant, polynomial, hinge, got 'hinj' "
            "(did you mean 'hinge'?)");
  EXPECT_EQ(staleness, "polynomial");
  const json j_str_ok = json{{"staleness", "hinge"}};
  OptionReader str_ok(j_str_ok, "strategy.params");
  str_ok.choice("staleness", &staleness, {"constant", "polynomial", "hinge"});
  EXPECT_TRUE(str_ok.finish().is_ok());
  EXPECT_EQ(staleness, "hinge");

  const json j_type = json{{"mode", 1}};
  OptionReader type(j_type, "");
  type.choice("mode", &n, kModes);
  EXPECT_NE(message_of(type.finish()).find("expected a string"), std::string::npos);
}

TEST(OptionReader, Ranges) {
  int64_t threads = 2;
  double frac = 1;
  const json j_r = json{{"threads", 0}, {"frac", 0.5}};
  OptionReader r(j_r, "");
  r.in_range("threads", &threads, int64_t{1}, int64_t{1024}).in_range("frac", &frac, 0.0, 1.0);
  EXPECT_EQ(message_of(r.finish()), "threads: must be in [1, 1024], got 0");
  int64_t k = 5;
  const json j_q = json{{"k", -2}};
  OptionReader q(j_q, "p");
  q.at_least("k", &k, int64_t{1});
  EXPECT_EQ(message_of(q.finish()), "p.k: must be >= 1, got -2");
  const json j_absent = json::object();
  OptionReader absent(j_absent, "p");
  k = 5;
  absent.at_least("k", &k, int64_t{10});  // absent: the default is not checked
  EXPECT_TRUE(absent.finish().is_ok());
  EXPECT_EQ(k, 5);
}

TEST(OptionReader, UnknownKeysSuggestAndListKnownOnes) {
  int64_t rounds = 0;
  const json j_r = json{{"rouns", 3}};
  OptionReader r(j_r, "");
  r.optional("rounds", &rounds).known({"name"});
  EXPECT_EQ(message_of(r.finish()),
            "unknown key 'rouns' (did you mean 'rounds'?) (known: rounds, name)");
  const json j_nested = json{{"prot", 1}};
  OptionReader nested(j_nested, "redis");
  int port = 0;
  nested.optional("port", &port);
  EXPECT_EQ(message_of(nested.finish()),
            "redis: unknown key 'prot' (did you mean 'port'?) (known: port)");
  const json j_none = json{{"x", 1}};
  OptionReader none(j_none, "strategy.params");
  EXPECT_EQ(message_of(none.finish()), "strategy.params: unknown key 'x' (known: none)");
}

TEST(OptionReader, HasDoesNotMarkAKeyAsRead) {
  const json j_r = json{{"a", 1}};
  OptionReader r(j_r, "o");
  EXPECT_TRUE(r.has("a"));
  EXPECT_FALSE(r.has("b"));
  EXPECT_FALSE(r.finish().is_ok());
  r.known({"a"});
  EXPECT_TRUE(r.finish().is_ok());
}

TEST(OptionReader, IgnoreUnknownAcceptsExtraKeys) {
  std::string id;
  const json j_r = json{{"id", "t1"}, {"added_later", 1}};
  OptionReader r(j_r, "task result");
  r.required("id", &id).ignore_unknown();
  EXPECT_TRUE(r.finish().is_ok());
  EXPECT_EQ(id, "t1");
}

TEST(OptionReader, NonObjectsAndNull) {
  const json j_null_reader = json(nullptr);
  OptionReader null_reader(j_null_reader, "train");
  int64_t e = 1;
  null_reader.optional("epochs", &e);
  EXPECT_TRUE(null_reader.finish().is_ok());
  EXPECT_EQ(e, 1);
  const json j_list = json::array({1, 2});
  OptionReader list(j_list, "train");
  list.optional("epochs", &e);
  EXPECT_NE(message_of(list.finish()).find("train: expected a mapping of keys, got array"),
            std::string::npos);
}

TEST(OptionReader, ChildrenCarryTheDottedPath) {
  json j = {{"faults", {{"min_fraction", "half"}}}, {"async", nullptr}};
  OptionReader r(j, "");
  OptionReader f = r.child("faults");
  double frac = 1;
  f.optional("min_fraction", &frac);
  EXPECT_EQ(message_of(f.finish()), "faults.min_fraction: expected a finite number, got \"half\"");
  OptionReader a = r.child("async");  // null: an empty object
  int64_t n = 3;
  a.optional("max_updates", &n);
  EXPECT_TRUE(a.finish().is_ok());
  OptionReader missing = r.child("output");
  EXPECT_TRUE(missing.finish().is_ok());
  EXPECT_TRUE(r.finish().is_ok());  // children count as read
  OptionReader deeper = f.child("x");
  EXPECT_EQ(deeper.path(), "faults.x");
}

TEST(OptionReader, FailAndErrorNameTheField) {
  double mu = -1;
  const json j_r = json{{"mu", -1}};
  OptionReader r(j_r, "strategy.params");
  r.optional("mu", &mu);
  if (mu < 0) r.fail("mu", "must be >= 0");
  EXPECT_EQ(message_of(r.finish()), "strategy.params.mu: must be >= 0");
  const json j_o = json::object();
  OptionReader o(j_o, "control");
  o.fail("needs a url");
  EXPECT_EQ(message_of(o.finish()), "control: needs a url");
  EXPECT_EQ(message_of(o.error("x")), "control: x");
  EXPECT_EQ(o.label("k"), "control.k");
}

TEST(OptionReader, SourceLinesPrefixFileAndLine) {
  SourceLines lines;
  lines.source = "c.yaml";
  lines.lines = {{"", 1}, {"/train", 4}, {"/train/lr", 5}, {"/train/lr~1x", 6}};
  json j = {{"train", {{"lr", "x"}, {"lr/x", 1}}}};
  OptionReader root(j, "", &lines);
  OptionReader train = root.child("train");
  double lr = 0;
  train.optional("lr", &lr);
  EXPECT_EQ(message_of(train.finish()), "c.yaml:5: train.lr: expected a finite number, got \"x\"");
  OptionReader t2 = root.child("train");
  t2.known({"lr"});
  EXPECT_EQ(message_of(t2.finish()),
            "c.yaml:6: train: unknown key 'lr/x' (did you mean 'lr'?) (known: lr)");
  EXPECT_EQ(t2.line_of("epochs"), 4);  // nearest ancestor with a line
  EXPECT_EQ(lines.where("/nothing/here"), "c.yaml:1: ");
  SourceLines empty;
  empty.source = "<config>";
  EXPECT_EQ(empty.where("/a"), "<config>: ");
}

TEST(OptionReader, PointerTokensAreEscaped) {
  EXPECT_EQ(json_pointer_token("a/b~c"), "a~1b~0c");
  EXPECT_EQ(json_pointer_token("plain"), "plain");
}

}  // namespace
}  // namespace flight

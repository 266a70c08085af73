// ByteLru: the eviction policy behind the process caches (jobs, datasets).
#include "flight/base/lru_cache.h"

#include <memory>

#include <gtest/gtest.h>

namespace flight {
namespace {

using Keys = std::vector<std::string>;

TEST(ByteLru, EvictsLeastRecentlyUsedFirstAndCountsBytes) {
  ByteLru<int> lru(100);
  lru.put("a", 1, 40);
  lru.put("b", 2, 30);
  lru.put("c", 3, 20);
  EXPECT_EQ(lru.bytes(), 90u);
  EXPECT_EQ(lru.keys(), (Keys{"c", "b", "a"}));
  // A hit makes "a" the most recent, so "b" is now the oldest.
  ASSERT_EQ(lru.get("a"), 1);
  EXPECT_EQ(lru.keys(), (Keys{"a", "c", "b"}));
  EXPECT_FALSE(lru.get("zz").has_value());
  lru.put("d", 4, 25);  // 115 > 100: "b" (30) goes, 85 left
  EXPECT_EQ(lru.keys(), (Keys{"d", "a", "c"}));
  EXPECT_EQ(lru.bytes(), 85u);
  EXPECT_EQ(lru.evictions(), 1u);
  lru.put("e", 5, 60);  // 145: "c" (20) then "a" (40) go, 85 left
  EXPECT_EQ(lru.keys(), (Keys{"e", "d"}));
  EXPECT_EQ(lru.bytes(), 85u);
  EXPECT_EQ(lru.evictions(), 3u);
  // Replacing a key re-accounts it.
  lru.put("d", 6, 10);
  EXPECT_EQ(lru.bytes(), 70u);
  EXPECT_EQ(lru.get("d"), 6);
  EXPECT_EQ(lru.size(), 2u);
  EXPECT_TRUE(lru.erase("e"));
  EXPECT_FALSE(lru.erase("e"));
  EXPECT_EQ(lru.bytes(), 10u);
  // Shrinking evicts at once.
  lru.set_capacity(0);
  EXPECT_EQ(lru.size(), 0u);
  EXPECT_EQ(lru.bytes(), 0u);
  // An unpinned entry alone over the budget does not stay, nor do older ones.
  lru.set_capacity(100);
  lru.put("x", 8, 5);
  lru.put("huge", 7, 1000);
  EXPECT_EQ(lru.size(), 0u);
  EXPECT_EQ(lru.bytes(), 0u);
}

// Entries held outside the cache (use_count > 1) are pinned: skipped by
// eviction, which takes the next oldest instead; they count all the same.
TEST(ByteLru, PinnedEntriesAreNotEvicted) {
  using Ptr = std::shared_ptr<int>;
  ByteLru<Ptr> lru(100, [](const Ptr& p) { return p.use_count() > 1; });
  Ptr a = std::make_shared<int>(1);
  lru.put("a", a, 50);  // held by `a`
  lru.put("b", std::make_shared<int>(2), 30);
  lru.put("c", std::make_shared<int>(3), 40);  // 120: "a" is oldest but pinned, "b" goes
  EXPECT_EQ(lru.keys(), (Keys{"c", "a"}));
  EXPECT_EQ(lru.bytes(), 90u);
  // Everything pinned: the total may exceed the budget rather than drop values in use.
  Ptr d = std::make_shared<int>(4);
  Ptr c = *lru.get("c");
  lru.put("d", d, 60);  // 150, all three held
  EXPECT_EQ(lru.size(), 3u);
  EXPECT_EQ(lru.bytes(), 150u);
  EXPECT_EQ(*a, 1);
  // Released: the next eviction pass takes them, oldest first ("a", then "c").
  a.reset();
  lru.set_capacity(100);
  EXPECT_EQ(lru.keys(), (Keys{"d", "c"}));
  c.reset();
  lru.set_capacity(100);  // 100 fits: nothing more goes
  EXPECT_EQ(lru.bytes(), 100u);
  lru.set_capacity(60);
  EXPECT_EQ(lru.keys(), (Keys{"d"}));
  // A value evicted while a caller holds a copy stays valid for that caller.
  Ptr kept = *lru.get("d");
  d.reset();
  lru.erase("d");
  EXPECT_EQ(*kept, 4);
}

}  // namespace
}  // namespace flight

#include "flight/faas/shared_json.h"

namespace flight::faas {

namespace {

// The common part of objects `docs` (at least two).
nlohmann::json common_of(const std::vector<const nlohmann::json*>& docs) {
  nlohmann::json common = nlohmann::json::object();
  const nlohmann::json& first = *docs.front();
  for (auto kv = first.begin(); kv != first.end(); ++kv) {
    bool same = true, objects = kv.value().is_object();
    std::vector<const nlohmann::json*> values;
    if (objects) values.reserve(docs.size());
    if (objects) values.push_back(&kv.value());
    for (size_t i = 1; (same || objects) && i < docs.size(); ++i) {
      auto it = docs[i]->find(kv.key());
      if (it == docs[i]->end()) {
        same = objects = false;
        break;
      }
      if (same && *it != kv.value()) same = false;
      if (objects && !it->is_object()) objects = false;
      if (objects) values.push_back(&*it);
    }
    if (same) {
      common[kv.key()] = kv.value();
    } else if (objects) {
      // Objects that differ (a Ref with its own key): share their common keys.
      nlohmann::json sub = common_of(values);
      if (!sub.empty()) common[kv.key()] = std::move(sub);
    }
  }
  return common;
}

// Erases from `doc` what `common` holds (objects recursively; an object left
// empty goes too).
void strip(nlohmann::json& doc, const nlohmann::json& common) {
  for (auto kv = common.begin(); kv != common.end(); ++kv) {
    auto it = doc.find(kv.key());
    if (it == doc.end()) continue;
    if (kv.value().is_object() && it->is_object()) {
      strip(*it, kv.value());
      if (it->empty()) doc.erase(it);
    } else if (*it == kv.value()) {
      doc.erase(it);
    }
  }
}

void merge_into(nlohmann::json& out, nlohmann::json own) {
  for (auto kv = own.begin(); kv != own.end(); ++kv) {
    auto it = out.find(kv.key());
    if (it != out.end() && it->is_object() && kv.value().is_object()) {
      merge_into(*it, std::move(kv.value()));
    } else {
      out[kv.key()] = std::move(kv.value());
    }
  }
}

}  // namespace

nlohmann::json factor_shared(const std::vector<nlohmann::json*>& docs) {
  if (docs.size() < 2) return nullptr;
  std::vector<const nlohmann::json*> objects;
  objects.reserve(docs.size());
  for (const auto* d : docs) {
    if (!d->is_object()) return nullptr;
    objects.push_back(d);
  }
  nlohmann::json common = common_of(objects);
  if (common.empty()) return nullptr;
  for (auto* d : docs) strip(*d, common);
  return common;
}

nlohmann::json merge_shared(const nlohmann::json& shared, nlohmann::json own) {
  if (!shared.is_object() || !own.is_object()) return own.is_null() ? shared : own;
  nlohmann::json out = shared;
  merge_into(out, std::move(own));
  return out;
}

}  // namespace flight::faas

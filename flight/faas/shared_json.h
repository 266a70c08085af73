// Shared parts of a batch of similar JSON documents.
//
// The tasks of one submission (a round's train args) and the results of one
// post (their TrainResults) repeat most of their bytes: the job, the model
// Ref, connector configs. Over REST such a batch travels as one "shared"
// object plus each document's own remainder (docs/rest-api.md): the shared
// object is sent once per request or reply instead of once per task, and
// parsed, stored and copied once.
//
// A document is merge_shared(shared, own): objects are merged key by key,
// recursively; any other own value replaces the shared one.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

namespace flight::faas {

// Moves what every document in `docs` has in common (keys with equal values,
// and, in objects that differ, their common keys recursively) into the
// returned object and leaves each document its remainder, so that
// merge_shared(returned, *docs[i]) gives back the original. Null (documents
// untouched) when there are fewer than two, one is not an object, or they
// share nothing.
nlohmann::json factor_shared(const std::vector<nlohmann::json*>& docs);

// `own` merged onto a copy of `shared` (the inverse of factor_shared); a null
// `own` (absent) gives `shared`, any other non-object `own` itself.
nlohmann::json merge_shared(const nlohmann::json& shared, nlohmann::json own);

}  // namespace flight::faas

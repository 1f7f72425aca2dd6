// A new response for a model whose cross-products are already formed: only
// the parts of [Z X y]'W[Z X y] that involve y change (the last row of C1,
// XX and CR, and the mean of y when centring), so a refit costs one pass
// over y instead of a pass over every column of the data. Parametric
// bootstraps and simulation-based checks refit hundreds of times.
#pragma once

#include "cross_products.h"
#include "model_data.h"

namespace mlm {

// Recompute the y-parts of xp from data.y (same X, Z, weights and offset as
// the data xp was built from).
void update_response(CrossProducts& xp, const ModelData& data);

}  // namespace mlm

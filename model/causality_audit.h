// The causality audit on a model in memory (the checkpoint form, audit_causality in analysis.h,
// loads one and calls this): logits at positions <= `position` must not move when every token after
// it is replaced by random tokens.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/analysis.h"
#include "model/language_model.h"

namespace harmonic {

// `ids` are the text's token ids (at least position + 2 of them; the audit reads at most 64 after
// `position`). A change counts as a leak only above the run-to-run noise of the same forward on
// the same input, which is measured first and stated in the report: on the CPU repeated forwards
// are bit-identical and any change at all is a leak.
CausalityReport audit_model_causality(LanguageModel& model, const std::vector<int64_t>& ids, int64_t position,
                                      const torch::Device& device, int trials = 3);

}  // namespace harmonic

// Counts given on the command line (`--steps 100K`, `--tokens 2.5G`, `--context 1M`).
#pragma once

#include <cstdint>
#include <string>

namespace harmonic {

// "16384", "100M", "2.5G", "64K" (decimal suffixes K, M, G, T) -> count; Error naming `flag` otherwise.
int64_t parse_count(const std::string& text, const std::string& flag);

}  // namespace harmonic

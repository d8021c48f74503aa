#include "app/cli_count.h"

#include <cmath>
#include <exception>

#include "model/error.h"

namespace harmonic {

int64_t parse_count(const std::string& text, const std::string& flag) {
    std::size_t used = 0;
    double value = 0.0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    double scale = 1.0;
    if (used > 0 && used + 1 == text.size()) {
        switch (text.back()) {
            case 'k': case 'K': scale = 1e3; break;
            case 'm': case 'M': scale = 1e6; break;
            case 'g': case 'G': scale = 1e9; break;
            case 't': case 'T': scale = 1e12; break;
            default: used = 0;
        }
        if (used > 0) ++used;
    }
    const double v = value * scale;
    if (used == 0 || used != text.size() || !std::isfinite(v) || v < 0 || v > 9e18 || v != std::floor(v))
        throw Error(flag + ": '" + text + "' is not a count (expected e.g. 16384, 64K, 100M or 2.5G)");
    return static_cast<int64_t>(v);
}

}  // namespace harmonic

#include "views/token_axis.h"

#include <algorithm>
#include <cmath>

namespace harmonic::views {

namespace {
// Zooming in further than this shows nothing a user can read, and a zero-width range would
// make QCustomPlot divide by zero.
constexpr double kMinimumWidth = 4.0;
}  // namespace

TokenAxis::TokenAxis(QObject* parent) : QObject(parent) {}

void TokenAxis::setTokenCount(qint64 count) {
    count_ = std::max<qint64>(count, 0);
    selectionBegin_ = selectionEnd_ = 0;
    lower_ = fullLower();
    upper_ = std::max(fullUpper(), lower_ + 1.0);
    emit tokenCountChanged(count_);
    emit selectionChanged(0, 0);
    emit rangeChanged(lower_, upper_);
}

void TokenAxis::setRange(double lower, double upper) {
    if (!std::isfinite(lower) || !std::isfinite(upper)) return;
    if (upper < lower) std::swap(lower, upper);
    const double full = std::max(fullUpper() - fullLower(), 1.0);
    double width = std::clamp(upper - lower, std::min(kMinimumWidth, full), full);
    // Keep the centre where the user put it, then slide the window back inside the text
    // (panning past the end stops at the end instead of shrinking the range).
    const double centre = 0.5 * (lower + upper);
    lower = centre - 0.5 * width;
    upper = centre + 0.5 * width;
    if (lower < fullLower()) {
        lower = fullLower();
        upper = lower + width;
    }
    if (upper > fullLower() + full) {
        upper = fullLower() + full;
        lower = upper - width;
    }
    if (lower == lower_ && upper == upper_) return;
    lower_ = lower;
    upper_ = upper;
    emit rangeChanged(lower_, upper_);
}

void TokenAxis::resetRange() { setRange(fullLower(), std::max(fullUpper(), fullLower() + 1.0)); }

qint64 TokenAxis::firstVisibleToken() const {
    return std::clamp<qint64>(static_cast<qint64>(std::ceil(lower_)), 0, count_);
}

qint64 TokenAxis::endVisibleToken() const {
    return std::clamp<qint64>(static_cast<qint64>(std::floor(upper_)) + 1, 0, count_);
}

void TokenAxis::setSelection(qint64 begin, qint64 end) {
    if (end < begin) std::swap(begin, end);
    begin = std::clamp<qint64>(begin, 0, count_);
    end = std::clamp<qint64>(end, 0, count_);
    if (begin == end) begin = end = 0;
    if (begin == selectionBegin_ && end == selectionEnd_) return;
    selectionBegin_ = begin;
    selectionEnd_ = end;
    emit selectionChanged(begin, end);
}

}  // namespace harmonic::views

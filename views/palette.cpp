#include "views/palette.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace harmonic::views {

const QVector<QColor>& categoricalColors() {
    static const QVector<QColor> colors = {
        QColor(0x00, 0x72, 0xB2),  // blue
        QColor(0xD5, 0x5E, 0x00),  // vermillion
        QColor(0x00, 0x9E, 0x73),  // bluish green
        QColor(0xE6, 0x9F, 0x00),  // orange
        QColor(0xCC, 0x79, 0xA7),  // reddish purple
        QColor(0x56, 0xB4, 0xE9),  // sky blue
        QColor(0x00, 0x00, 0x00),  // black
        QColor(0xF0, 0xE4, 0x42),  // yellow (last: weak on white)
    };
    return colors;
}

QVector<QColor> modelColors(const AnalysisResult& result) {
    const auto& palette = categoricalColors();
    auto familySlot = [](const std::string& family) {
        if (family == "harmonic") return 0;
        if (family == "transformer") return 1;
        if (family == "mamba") return 2;
        return -1;
    };
    const int n = static_cast<int>(result.models.size());
    QVector<QColor> colors(n);
    std::set<int> used;
    std::vector<bool> assigned(static_cast<size_t>(n), false);
    for (int i = 0; i < n; ++i) {
        const int slot = familySlot(result.models[static_cast<size_t>(i)].family);
        if (slot >= 0 && !used.count(slot)) {
            colors[i] = palette[slot];
            used.insert(slot);
            assigned[static_cast<size_t>(i)] = true;
        }
    }
    int next = 0;
    for (int i = 0; i < n; ++i) {
        if (assigned[static_cast<size_t>(i)]) continue;
        while (used.count(next % palette.size()) && static_cast<int>(used.size()) < palette.size()) ++next;
        const int slot = next % palette.size();
        colors[i] = palette[slot];
        used.insert(slot);
        ++next;
    }
    return colors;
}

QColor modelColor(const AnalysisResult& result, int modelIndex) {
    const auto colors = modelColors(result);
    if (modelIndex < 0 || modelIndex >= colors.size()) return Qt::black;
    return colors[modelIndex];
}

QColor levelColor(int levelIndex, int levelCount) {
    // Stop short of viridis' yellow end: it vanishes on white paper.
    const double t = levelCount <= 1 ? 0.0 : 0.8 * levelIndex / (levelCount - 1);
    return ColorMap::viridis().at(t);
}

QColor ColorMap::at(double t) const {
    if (std::isnan(t) || stops_.isEmpty()) return QColor(0xDD, 0xDD, 0xDD);
    t = std::clamp(t, 0.0, 1.0);
    const double pos = t * (stops_.size() - 1);
    const int i = std::min(static_cast<int>(pos), static_cast<int>(stops_.size()) - 2);
    if (i < 0) return stops_.front();
    const double f = pos - i;
    const QColor& a = stops_[i];
    const QColor& b = stops_[i + 1];
    auto mix = [f](int x, int y) { return static_cast<int>(std::lround(x + f * (y - x))); };
    return QColor(mix(a.red(), b.red()), mix(a.green(), b.green()), mix(a.blue(), b.blue()));
}

const ColorMap& ColorMap::sequential() {
    // ColorBrewer YlOrRd, from a near-white start so that well-predicted text stays readable.
    static const ColorMap map({QColor(0xFF, 0xFF, 0xF2), QColor(0xFF, 0xED, 0xA0), QColor(0xFE, 0xD9, 0x76),
                               QColor(0xFE, 0xB2, 0x4C), QColor(0xFD, 0x8D, 0x3C), QColor(0xFC, 0x4E, 0x2A),
                               QColor(0xE3, 0x1A, 0x1C), QColor(0xB1, 0x00, 0x26)});
    return map;
}

const ColorMap& ColorMap::diverging() {
    // ColorBrewer RdBu reversed: blue where the first model is better (lower bpt).
    static const ColorMap map({QColor(0x21, 0x66, 0xAC), QColor(0x67, 0xA9, 0xCF), QColor(0xD1, 0xE5, 0xF0),
                               QColor(0xF7, 0xF7, 0xF7), QColor(0xFD, 0xDB, 0xC7), QColor(0xEF, 0x8A, 0x62),
                               QColor(0xB2, 0x18, 0x2B)});
    return map;
}

const ColorMap& ColorMap::viridis() {
    static const ColorMap map({QColor(0x44, 0x01, 0x54), QColor(0x48, 0x28, 0x78), QColor(0x3E, 0x4A, 0x89),
                               QColor(0x31, 0x68, 0x8E), QColor(0x26, 0x82, 0x8E), QColor(0x1F, 0x9E, 0x89),
                               QColor(0x35, 0xB7, 0x79), QColor(0x6D, 0xCD, 0x59), QColor(0xB4, 0xDE, 0x2C),
                               QColor(0xFD, 0xE7, 0x25)});
    return map;
}

QColor textColorOn(const QColor& background) {
    const double luminance = 0.2126 * background.redF() + 0.7152 * background.greenF() + 0.0722 * background.blueF();
    return luminance < 0.5 ? Qt::white : Qt::black;
}

}  // namespace harmonic::views

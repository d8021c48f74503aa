// Colours shared by every view and every exported figure, so a model has the same colour in
// the text, the curves, the summary and the paper.
#pragma once

#include <QColor>
#include <QVector>

#include "model/analysis_result.h"

namespace harmonic::views {

// Okabe-Ito: distinguishable with the common colour-vision deficiencies and in greyscale print.
const QVector<QColor>& categoricalColors();

// The first model of each family gets its family's colour (harmonic blue, transformer
// vermillion, mamba green); further models take the next unused colour, in model order.
QColor modelColor(const AnalysisResult& result, int modelIndex);
QVector<QColor> modelColors(const AnalysisResult& result);

// Levels of one model, from fast to slow: dark to light along viridis.
QColor levelColor(int levelIndex, int levelCount);

// A piecewise-linear colour map over [0, 1].
class ColorMap {
public:
    explicit ColorMap(QVector<QColor> stops) : stops_(std::move(stops)) {}
    QColor at(double t) const;  // t is clamped; NaN gives light grey
    const QVector<QColor>& stops() const { return stops_; }

    static const ColorMap& sequential();  // low bpt pale yellow -> high bpt dark red
    static const ColorMap& diverging();   // negative blue -> 0 white -> positive red
    static const ColorMap& viridis();     // heatmaps

private:
    QVector<QColor> stops_;
};

// Black or white, whichever reads better on background.
QColor textColorOn(const QColor& background);

}  // namespace harmonic::views

// What the QCustomPlot-based views share: styling, following the token axis, drawing and making
// selections, and level-of-detail data so that a million points pan without lag.
#pragma once

#include <QList>
#include <QObject>
#include <QPointer>
#include <QSharedPointer>
#include <qcustomplot.h>
#include <vector>

#include "views/figure_style.h"
#include "views/palette.h"
#include "views/token_axis.h"

namespace harmonic::views {

QCPColorGradient toGradient(const ColorMap& map);

void styleAxis(QCPAxis* axis, const FigureStyle& style);
void styleAxisRect(QCPAxisRect* rect, const FigureStyle& style);
void styleLegend(QCPLegend* legend, const FigureStyle& style);
void styleColorScale(QCPColorScale* scale, const FigureStyle& style);
QPen curvePen(const QColor& color, double width, Qt::PenStyle style = Qt::SolidLine);

// A new QCustomPlot configured the way every view wants it (no default axis rect content,
// white background, horizontal-only drag and zoom).
QCustomPlot* makePlot(QWidget* parent);

// Shortens axis labels that are longer than their axis and thins tick labels that would touch,
// for the plot's current size (makePlot runs it after every layout); true when it changed
// something, so the plot needs another layout. An axis may offer shorter forms of its label,
// longest first, as the QStringList property kLabelAlternatives.
inline constexpr const char* kLabelAlternatives = "harmonicLabelAlternatives";
bool fitPlotText(QCustomPlot* plot);

// Logarithmic axis with decade ticks.
void setLogAxis(QCPAxis* axis);

// Binds the x axes of some axis rects of one plot to a TokenAxis: zooming or dragging in any
// of them moves the TokenAxis, and TokenAxis changes move them. Shift+drag or right-drag
// selects a token range; the selection is drawn as a band in every bound rect.
class TokenPlotLink : public QObject {
    Q_OBJECT
public:
    explicit TokenPlotLink(QCustomPlot* plot);
    void setTokenAxis(TokenAxis* axis);
    // Replaces the bound axes (call after rebuilding the plot's layout).
    void setAxes(const QList<QCPAxis*>& xAxes);
    void syncFromTokenAxis();
    void syncSelection();

signals:
    // After the bound axes moved (views update level-of-detail data here, before the replot).
    void rangeApplied(double lower, double upper);

private:
    void onAxisRangeChanged(const QCPRange& range);
    void onMousePress(QMouseEvent* event);
    void onMouseMove(QMouseEvent* event);
    void onMouseRelease(QMouseEvent* event);
    QCPAxis* axisAt(const QPointF& pos) const;

    QCustomPlot* plot_;
    QPointer<TokenAxis> axis_;
    QList<QPointer<QCPAxis>> axes_;
    QList<QPointer<QCPItemRect>> bands_;
    bool applying_ = false;
    bool selecting_ = false;
    double selectStart_ = 0.0;
    QPointer<QCPAxis> selectAxis_;
};

// Data of one curve at several levels of detail. Level k keeps, for each block of 4^k points,
// the smallest and the largest value in their original order, so a zoomed-out curve looks
// the same as the full one (QCustomPlot's adaptive sampling draws min/max per pixel anyway)
// while a replot touches only a few thousand points.
class LodCurve {
public:
    LodCurve() = default;
    // keys ascending; NaN values are dropped (they are gaps, e.g. token 0's bpt).
    LodCurve(const std::vector<double>& keys, const std::vector<double>& values);
    // From per-token values (key = index); float input avoids a copy of bpt.
    static LodCurve fromTokens(const std::vector<float>& values);
    static LodCurve fromTokens(const std::vector<double>& values);

    bool empty() const { return levels_.empty(); }
    QSharedPointer<QCPGraphDataContainer> full() const { return levels_.empty() ? nullptr : levels_.front(); }
    // The coarsest level that still has at least two points per pixel in [lower, upper].
    QSharedPointer<QCPGraphDataContainer> forRange(double lower, double upper, int pixels) const;
    int levelFor(double lower, double upper, int pixels) const;
    int levelCount() const { return static_cast<int>(levels_.size()); }
    QSharedPointer<QCPGraphDataContainer> level(int k) const { return levels_[static_cast<size_t>(k)]; }

private:
    void buildLevels();
    std::vector<QSharedPointer<QCPGraphDataContainer>> levels_;
    double pointsPerKey_ = 1.0;
};

// Keeps each graph on the LOD level that suits the visible range of its key axis.
void applyLod(QCPGraph* graph, const LodCurve& curve);

}  // namespace harmonic::views

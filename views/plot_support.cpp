#include "views/plot_support.h"

#include <algorithm>
#include <cmath>

namespace harmonic::views {

QCPColorGradient toGradient(const ColorMap& map) {
    QCPColorGradient gradient;
    gradient.clearColorStops();
    const auto& stops = map.stops();
    for (int i = 0; i < stops.size(); ++i) gradient.setColorStopAt(stops.size() == 1 ? 0.0 : double(i) / (stops.size() - 1), stops[i]);
    gradient.setColorInterpolation(QCPColorGradient::ciRGB);
    gradient.setNanHandling(QCPColorGradient::nhTransparent);
    gradient.setLevelCount(256);
    return gradient;
}

void styleAxis(QCPAxis* axis, const FigureStyle& style) {
    QPen pen(Qt::black, style.axisLineWidth);
    pen.setCapStyle(Qt::FlatCap);
    axis->setBasePen(pen);
    axis->setTickPen(pen);
    axis->setSubTickPen(pen);
    axis->setLabelFont(style.labelFont);
    axis->setTickLabelFont(style.tickFont);
    axis->setSelectedLabelFont(style.labelFont);
    axis->setSelectedTickLabelFont(style.tickFont);
    axis->setLabelColor(Qt::black);
    axis->setTickLabelColor(Qt::black);
    // Inward ticks and tight padding: what journals print, and it saves space in a 3.5 in column.
    const int tick = style.paper ? 3 : 5;
    axis->setTickLength(tick, 0);
    axis->setSubTickLength(tick / 2 + 1, 0);
    axis->setTickLabelPadding(style.paper ? 2 : 4);
    axis->setLabelPadding(style.paper ? 2 : 4);
    QPen grid(QColor(0, 0, 0, 28), style.thinLineWidth);
    axis->grid()->setPen(grid);
    axis->grid()->setZeroLinePen(grid);
    axis->grid()->setSubGridVisible(false);
}

void styleAxisRect(QCPAxisRect* rect, const FigureStyle& style) {
    for (QCPAxis* axis : rect->axes()) styleAxis(axis, style);
    // QCustomPlot's default minimum margin (15 px on every side) leaves wide gaps between
    // stacked panels; axes still get the room their labels need through the auto margins.
    rect->setMinimumMargins(style.paper ? QMargins(2, 3, 4, 2) : QMargins(4, 6, 8, 4));
    if (QCPLayoutInset* inset = rect->insetLayout()) {
        for (int i = 0; i < inset->elementCount(); ++i)
            if (auto* legend = qobject_cast<QCPLegend*>(inset->elementAt(i))) styleLegend(legend, style);
    }
}

void styleLegend(QCPLegend* legend, const FigureStyle& style) {
    legend->setFont(style.legendFont);
    legend->setSelectedFont(style.legendFont);
    legend->setBorderPen(QPen(QColor(0, 0, 0, 80), style.thinLineWidth));
    legend->setBrush(QColor(255, 255, 255, 220));
    const int pad = style.paper ? 2 : 4;
    legend->setMargins(QMargins(pad + 1, pad, pad + 1, pad));
    legend->setRowSpacing(style.paper ? -2 : 0);
    legend->setIconSize(style.paper ? QSize(14, 6) : QSize(24, 10));
    legend->setIconTextPadding(style.paper ? 3 : 6);
    for (int i = 0; i < legend->itemCount(); ++i) {
        legend->item(i)->setFont(style.legendFont);
        legend->item(i)->setSelectedFont(style.legendFont);
    }
}

void styleColorScale(QCPColorScale* scale, const FigureStyle& style) {
    styleAxis(scale->axis(), style);
    scale->axis()->grid()->setVisible(false);
    scale->setBarWidth(style.paper ? 6 : 12);
    scale->setMinimumMargins(QMargins(0, 0, 0, 0));
    scale->axis()->setTickLength(0, style.paper ? 2 : 3);
    scale->axis()->setSubTickLength(0, 0);
}

QPen curvePen(const QColor& color, double width, Qt::PenStyle penStyle) {
    QPen pen(color, width, penStyle);
    pen.setCapStyle(Qt::FlatCap);
    pen.setJoinStyle(Qt::RoundJoin);
    return pen;
}

QCustomPlot* makePlot(QWidget* parent) {
    auto* plot = new QCustomPlot(parent);
    plot->setBackground(Qt::white);
    plot->setInteractions(QCP::Interactions(QCP::iRangeDrag) | QCP::iRangeZoom);
    plot->setNoAntialiasingOnDrag(true);
    plot->setPlottingHint(QCP::phFastPolylines, true);
    plot->setPlottingHint(QCP::phCacheLabels, true);
    plot->plotLayout()->clear();
    plot->plotLayout()->setRowSpacing(2);
    QObject::connect(plot, &QCustomPlot::afterLayout, plot, [plot] {
        if (fitPlotText(plot)) plot->replot(QCustomPlot::rpQueuedReplot);
    });
    return plot;
}

namespace {
const char* const kFullLabel = "harmonicFullLabel";
const char* const kShownLabel = "harmonicShownLabel";
const char* const kFullTicks = "harmonicFullTickCount";
const char* const kTicker = "harmonicTicker";

int textWidth(const QFont& font, const QString& text) {
    return QFontMetrics(font).boundingRect(QRect(), Qt::TextDontClip, text).width();
}

// The longest form of an axis label that fits the axis: the view's alternatives, then the
// first line, then the first line elided.
QString fittingLabel(QCPAxis* axis, const QString& full, int length) {
    QStringList candidates = axis->property(kLabelAlternatives).toStringList();
    if (candidates.isEmpty() || candidates.front() != full) candidates.prepend(full);
    const QString firstLine = full.section(QLatin1Char('\n'), 0, 0);
    candidates << firstLine;
    for (const QString& c : candidates)
        if (textWidth(axis->labelFont(), c) <= length - 4) return c;
    return QFontMetrics(axis->labelFont()).elidedText(candidates.back().section(QLatin1Char('\n'), 0, 0), Qt::ElideRight, std::max(0, length - 4));
}

bool fitAxis(QCPAxis* axis) {
    if (!axis->visible() || !axis->axisRect()) return false;
    bool changed = false;
    const bool horizontal = axis->orientation() == Qt::Horizontal;
    const int length = horizontal ? axis->axisRect()->width() : axis->axisRect()->height();
    if (length <= 0) return false;
    // A label set by the view since the last fit is the new full label.
    if (axis->label() != axis->property(kShownLabel).toString()) axis->setProperty(kFullLabel, axis->label());
    const QString full = axis->property(kFullLabel).toString();
    if (!full.isEmpty()) {
        const QString label = fittingLabel(axis, full, length);
        axis->setProperty(kShownLabel, label);
        if (label != axis->label()) {
            axis->setLabel(label);
            axis->setProperty(kShownLabel, label);
            changed = true;
        }
    }
    if (axis->tickLabels() && axis->ticker()) {
        // The view's own tick count, remembered per ticker (a view may install a new one).
        const auto ticker = static_cast<qulonglong>(reinterpret_cast<quintptr>(axis->ticker().data()));
        QVariant fullTicks = axis->property(kFullTicks);
        if (!fullTicks.isValid() || axis->property(kTicker).toULongLong() != ticker) {
            fullTicks = axis->ticker()->tickCount();
            axis->setProperty(kFullTicks, fullTicks);
            axis->setProperty(kTicker, ticker);
        }
        // Each tick label needs its own height (vertical) or its width plus a gap (horizontal).
        const QFontMetrics metrics(axis->tickLabelFont());
        const int each = horizontal ? metrics.horizontalAdvance(QStringLiteral("0.000")) + metrics.height() : metrics.height() * 2;
        const int ticks = std::clamp(length / std::max(1, each), 1, fullTicks.toInt());
        if (ticks != axis->ticker()->tickCount()) {
            axis->ticker()->setTickCount(ticks);
            changed = true;
        }
    }
    return changed;
}
}  // namespace

bool fitPlotText(QCustomPlot* plot) {
    bool changed = false;
    for (QCPLayoutElement* e : plot->plotLayout()->elements(true)) {
        if (auto* rect = qobject_cast<QCPAxisRect*>(e)) {
            for (QCPAxis* axis : rect->axes()) changed = fitAxis(axis) || changed;
            // A legend inside a panel too small for it would spill over the neighbours' labels.
            for (QCPLayoutElement* inset : rect->insetLayout()->elements(false)) {
                auto* legend = qobject_cast<QCPLegend*>(inset);
                if (!legend) continue;
                const QSize need = legend->minimumOuterSizeHint();
                const bool fits = need.height() <= rect->height() && need.width() <= rect->width();
                if (legend->visible() != fits) {
                    legend->setVisible(fits);
                    changed = true;
                }
            }
            // The last bottom tick label is centred on the right edge: leave room for its half.
            QCPAxis* bottom = rect->axis(QCPAxis::atBottom);
            if (bottom && bottom->visible() && bottom->tickLabels()) {
                const int half = QFontMetrics(bottom->tickLabelFont()).horizontalAdvance(QStringLiteral("1e+04")) / 2 + 2;
                QMargins m = rect->minimumMargins();
                if (m.right() < half) {
                    m.setRight(half);
                    rect->setMinimumMargins(m);
                    changed = true;
                }
            }
        } else if (auto* scale = qobject_cast<QCPColorScale*>(e)) {
            changed = fitAxis(scale->axis()) || changed;
        }
    }
    return changed;
}

void setLogAxis(QCPAxis* axis) {
    axis->setScaleType(QCPAxis::stLogarithmic);
    auto ticker = QSharedPointer<QCPAxisTickerLog>::create();
    ticker->setLogBase(10);
    ticker->setSubTickCount(8);
    axis->setTicker(ticker);
    axis->setNumberFormat(QStringLiteral("gb"));  // 10^3 printed as a power, not 1e+03
    axis->setNumberPrecision(0);
}

// --- TokenPlotLink -------------------------------------------------------------------------

TokenPlotLink::TokenPlotLink(QCustomPlot* plot) : QObject(plot), plot_(plot) {
    connect(plot_, &QCustomPlot::mousePress, this, &TokenPlotLink::onMousePress);
    connect(plot_, &QCustomPlot::mouseMove, this, &TokenPlotLink::onMouseMove);
    connect(plot_, &QCustomPlot::mouseRelease, this, &TokenPlotLink::onMouseRelease);
    connect(plot_, &QCustomPlot::mouseDoubleClick, this, [this](QMouseEvent* event) {
        if (axis_ && axisAt(event->position())) axis_->resetRange();
    });
}

void TokenPlotLink::setTokenAxis(TokenAxis* axis) {
    if (axis_) disconnect(axis_, nullptr, this, nullptr);
    axis_ = axis;
    if (!axis_) return;
    connect(axis_, &TokenAxis::rangeChanged, this, &TokenPlotLink::syncFromTokenAxis);
    connect(axis_, &TokenAxis::selectionChanged, this, &TokenPlotLink::syncSelection);
    syncFromTokenAxis();
    syncSelection();
}

void TokenPlotLink::setAxes(const QList<QCPAxis*>& xAxes) {
    for (const auto& band : bands_)
        if (band) plot_->removeItem(band);
    bands_.clear();
    axes_.clear();
    for (QCPAxis* axis : xAxes) {
        axes_.append(axis);
        QCPAxisRect* rect = axis->axisRect();
        rect->setRangeDrag(Qt::Horizontal);
        rect->setRangeZoom(Qt::Horizontal);
        rect->setRangeDragAxes(QList<QCPAxis*>{axis}, QList<QCPAxis*>{});
        rect->setRangeZoomAxes(QList<QCPAxis*>{axis}, QList<QCPAxis*>{});
        connect(axis, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), this, &TokenPlotLink::onAxisRangeChanged,
                Qt::UniqueConnection);

        auto* band = new QCPItemRect(plot_);
        band->setClipAxisRect(rect);
        for (QCPItemPosition* p : {band->topLeft, band->bottomRight}) {
            p->setAxes(axis, rect->axis(QCPAxis::atLeft));
            p->setAxisRect(rect);
            p->setTypeX(QCPItemPosition::ptPlotCoords);
            p->setTypeY(QCPItemPosition::ptAxisRectRatio);
        }
        band->setPen(QPen(QColor(0, 90, 200, 140), 1.0));
        band->setBrush(QColor(0, 120, 255, 45));
        band->setSelectable(false);
        band->setVisible(false);
        bands_.append(band);
    }
    syncFromTokenAxis();
    syncSelection();
}

void TokenPlotLink::syncFromTokenAxis() {
    if (!axis_) return;
    applying_ = true;
    for (const auto& axis : axes_)
        if (axis) axis->setRange(axis_->lower(), axis_->upper());
    applying_ = false;
    emit rangeApplied(axis_->lower(), axis_->upper());
    plot_->replot(QCustomPlot::rpQueuedReplot);
}

void TokenPlotLink::syncSelection() {
    const bool has = axis_ && axis_->hasSelection();
    for (const auto& band : bands_) {
        if (!band) continue;
        band->setVisible(has);
        if (has) {
            band->topLeft->setCoords(axis_->selectionBegin() - 0.5, 0.0);
            band->bottomRight->setCoords(axis_->selectionEnd() - 0.5, 1.0);
        }
    }
    plot_->replot(QCustomPlot::rpQueuedReplot);
}

void TokenPlotLink::onAxisRangeChanged(const QCPRange& range) {
    if (applying_ || !axis_) return;
    // The TokenAxis clamps to the text and then moves every bound axis (this one included).
    axis_->setRange(range.lower, range.upper);
    if (axis_->lower() != range.lower || axis_->upper() != range.upper || axes_.size() > 1) syncFromTokenAxis();
}

QCPAxis* TokenPlotLink::axisAt(const QPointF& pos) const {
    for (const auto& axis : axes_)
        if (axis && axis->axisRect()->rect().contains(pos.toPoint())) return axis;
    return nullptr;
}

void TokenPlotLink::onMousePress(QMouseEvent* event) {
    const bool wantsSelect = event->button() == Qt::RightButton ||
                             (event->button() == Qt::LeftButton && (event->modifiers() & Qt::ShiftModifier));
    QCPAxis* axis = axisAt(event->position());
    if (!wantsSelect || !axis || !axis_) return;
    // Range drag is decided when the press reaches the axis rect, right after this signal.
    plot_->setInteraction(QCP::iRangeDrag, false);
    selecting_ = true;
    selectAxis_ = axis;
    selectStart_ = axis->pixelToCoord(event->position().x());
}

void TokenPlotLink::onMouseMove(QMouseEvent* event) {
    if (!selecting_ || !selectAxis_ || !axis_) return;
    const double now = selectAxis_->pixelToCoord(event->position().x());
    const double a = std::min(selectStart_, now);
    const double b = std::max(selectStart_, now);
    axis_->setSelection(static_cast<qint64>(std::floor(a + 0.5)), static_cast<qint64>(std::floor(b + 0.5)) + 1);
}

void TokenPlotLink::onMouseRelease(QMouseEvent* event) {
    if (!selecting_) return;
    onMouseMove(event);
    selecting_ = false;
    plot_->setInteraction(QCP::iRangeDrag, true);
}

// --- LodCurve ------------------------------------------------------------------------------

namespace {
// Below this many points a level is cheap enough to draw whole; no coarser level is needed.
constexpr qsizetype kSmallestLevel = 4096;
}  // namespace

LodCurve::LodCurve(const std::vector<double>& keys, const std::vector<double>& values) {
    QVector<QCPGraphData> points;
    points.reserve(static_cast<qsizetype>(std::min(keys.size(), values.size())));
    for (size_t i = 0; i < keys.size() && i < values.size(); ++i)
        if (!std::isnan(values[i])) points.append(QCPGraphData(keys[i], values[i]));
    auto level0 = QSharedPointer<QCPGraphDataContainer>::create();
    level0->set(points, true);
    levels_.push_back(level0);
    if (points.size() > 1) {
        const double span = points.back().key - points.front().key;
        pointsPerKey_ = span > 0 ? static_cast<double>(points.size()) / span : 1.0;
    }
    buildLevels();
}

LodCurve LodCurve::fromTokens(const std::vector<float>& values) {
    LodCurve curve;
    QVector<QCPGraphData> points;
    points.reserve(static_cast<qsizetype>(values.size()));
    for (size_t i = 0; i < values.size(); ++i)
        if (!std::isnan(values[i])) points.append(QCPGraphData(static_cast<double>(i), values[i]));
    auto level0 = QSharedPointer<QCPGraphDataContainer>::create();
    level0->set(points, true);
    curve.levels_.push_back(level0);
    curve.pointsPerKey_ = 1.0;
    curve.buildLevels();
    return curve;
}

LodCurve LodCurve::fromTokens(const std::vector<double>& values) {
    LodCurve curve;
    QVector<QCPGraphData> points;
    points.reserve(static_cast<qsizetype>(values.size()));
    for (size_t i = 0; i < values.size(); ++i)
        if (!std::isnan(values[i])) points.append(QCPGraphData(static_cast<double>(i), values[i]));
    auto level0 = QSharedPointer<QCPGraphDataContainer>::create();
    level0->set(points, true);
    curve.levels_.push_back(level0);
    curve.pointsPerKey_ = 1.0;
    curve.buildLevels();
    return curve;
}

void LodCurve::buildLevels() {
    // Level k + 1 merges runs of four blocks of level k; each block keeps its minimum and
    // maximum point (in key order), so every level is the exact min/max envelope of blocks of
    // 4^k original points, and all levels together cost about 1.5 passes over the data.
    struct Block {
        QCPGraphData lo, hi;
    };
    const QCPGraphDataContainer& full = *levels_.front();
    const qsizetype n = full.size();
    if (n <= kSmallestLevel) return;
    std::vector<Block> blocks;
    blocks.reserve(static_cast<size_t>(n));
    for (auto it = full.constBegin(); it != full.constEnd(); ++it) blocks.push_back({*it, *it});
    while (static_cast<qsizetype>(blocks.size()) * 2 > kSmallestLevel) {
        std::vector<Block> merged;
        merged.reserve(blocks.size() / 4 + 1);
        for (size_t b = 0; b < blocks.size(); b += 4) {
            Block m = blocks[b];
            for (size_t k = b + 1; k < std::min(blocks.size(), b + 4); ++k) {
                if (blocks[k].lo.value < m.lo.value) m.lo = blocks[k].lo;
                if (blocks[k].hi.value > m.hi.value) m.hi = blocks[k].hi;
            }
            merged.push_back(m);
        }
        blocks.swap(merged);
        QVector<QCPGraphData> points;
        points.reserve(static_cast<qsizetype>(2 * blocks.size()));
        for (const Block& b : blocks) {
            const bool loFirst = b.lo.key <= b.hi.key;
            points.append(loFirst ? b.lo : b.hi);
            if (b.lo.key != b.hi.key) points.append(loFirst ? b.hi : b.lo);
        }
        auto level = QSharedPointer<QCPGraphDataContainer>::create();
        level->set(points, true);
        levels_.push_back(level);
    }
}

int LodCurve::levelFor(double lower, double upper, int pixels) const {
    if (levels_.size() <= 1) return 0;
    const double visible = std::max(0.0, upper - lower) * pointsPerKey_;
    const double perBlock = visible / (2.0 * std::max(pixels, 1));
    int k = 0;
    double block = 4.0;
    while (k + 1 < static_cast<int>(levels_.size()) && block <= perBlock) {
        ++k;
        block *= 4.0;
    }
    return k;
}

QSharedPointer<QCPGraphDataContainer> LodCurve::forRange(double lower, double upper, int pixels) const {
    if (levels_.empty()) return nullptr;
    return levels_[static_cast<size_t>(levelFor(lower, upper, pixels))];
}

void applyLod(QCPGraph* graph, const LodCurve& curve) {
    if (!graph || curve.empty()) return;
    const QCPRange range = graph->keyAxis()->range();
    const int pixels = std::max(graph->keyAxis()->axisRect()->width(), 100);
    auto data = curve.forRange(range.lower, range.upper, pixels);
    if (graph->data() != data) graph->setData(data);
}

}  // namespace harmonic::views

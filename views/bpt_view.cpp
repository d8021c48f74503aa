#include "views/bpt_view.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QToolTip>
#include <QVBoxLayout>
#include <cmath>
#include <limits>
#include <tuple>

#include "views/csv.h"
#include "views/derived.h"

namespace harmonic::views {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

QCPRange paddedRange(double lo, double hi, double pad = 0.05) {
    if (!std::isfinite(lo) || !std::isfinite(hi)) return QCPRange(0, 1);
    if (hi <= lo) hi = lo + 1.0;
    const double d = (hi - lo) * pad;
    return QCPRange(lo - d, hi + d);
}

// A difference needs two distinct models; otherwise the first two, or none.
std::pair<int, int> resolveDifference(int a, int b, int models) {
    if (a >= 0 && b >= 0 && a < models && b < models && a != b) return {a, b};
    if (a == -1 || b == -1) return {-1, -1};  // the user chose "none"
    return models >= 2 ? std::pair{0, 1} : std::pair{-1, -1};
}

std::vector<float> differenceOf(const AnalysisResult& r, int a, int b) {
    std::vector<float> diff;
    const int n = static_cast<int>(r.models.size());
    if (a < 0 || b < 0 || a >= n || b >= n || a == b) return diff;
    const auto& x = r.models[static_cast<size_t>(a)].bpt;
    const auto& y = r.models[static_cast<size_t>(b)].bpt;
    diff.resize(std::min(x.size(), y.size()));
    for (size_t i = 0; i < diff.size(); ++i) diff[i] = x[i] - y[i];  // NaN stays NaN
    return diff;
}

struct BptCurves {
    int window = 0;
    int diffA = -1;
    int diffB = -1;
    std::vector<LodCurve> raw, running, smooth;
    LodCurve diff;
};

// Everything BptView derives from a result; pure, so it may run on the analysis thread.
// withFixed = false skips the curves that do not depend on the options (raw, running mean).
std::shared_ptr<BptCurves> deriveCurves(const AnalysisResult& r, int window, int diffA, int diffB, bool withFixed) {
    auto c = std::make_shared<BptCurves>();
    c->window = window;
    std::tie(c->diffA, c->diffB) = resolveDifference(diffA, diffB, static_cast<int>(r.models.size()));
    for (const auto& model : r.models) {
        if (withFixed) {
            c->raw.push_back(LodCurve::fromTokens(model.bpt));
            c->running.push_back(LodCurve::fromTokens(runningMean(model.bpt)));
        }
        c->smooth.push_back(LodCurve::fromTokens(movingAverage(model.bpt, window)));
    }
    const auto diff = differenceOf(r, c->diffA, c->diffB);
    if (!diff.empty()) c->diff = LodCurve::fromTokens(movingAverage(diff, window));
    return c;
}

QCPRange curveRange(const LodCurve& curve) {
    bool found = false;
    if (curve.empty()) return QCPRange(0, 1);
    QCPRange r = curve.full()->valueRange(found);
    return found ? r : QCPRange(0, 1);
}
}  // namespace

BptView::BptView(QWidget* parent) : AnalysisView(parent) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(2);

    auto* controls = new QHBoxLayout;
    controls->setContentsMargins(4, 2, 4, 0);
    rawBox_ = new QCheckBox(tr("Raw"), this);
    rawBox_->setChecked(showRaw_);
    rawBox_->setToolTip(tr("Show the bpt of every token (thin lines)"));
    windowBox_ = new QComboBox(this);
    windowBox_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    for (int w : {1, 8, 16, 32, 64, 128, 256, 512, 1024, 4096})
        windowBox_->addItem(w == 1 ? tr("off") : tr("%1 tokens").arg(w), w);
    windowBox_->setCurrentIndex(windowBox_->findData(window_));
    windowBox_->setToolTip(tr("Width of the centred moving average (thick lines)"));
    diffABox_ = new QComboBox(this);
    diffABox_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    diffBBox_ = new QComboBox(this);
    diffBBox_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    diffABox_->setToolTip(tr("Difference panel: this model's bpt minus the other's (negative: this model is better)"));
    diffBBox_->setToolTip(diffABox_->toolTip());
    runningBox_ = new QCheckBox(tr("Running mean"), this);
    runningBox_->setChecked(showRunning_);
    runningBox_->setToolTip(tr("Mean bpt of all tokens up to each position (the long-context curve)"));
    controls->addWidget(rawBox_);
    controls->addWidget(new QLabel(tr("Smoothing:"), this));
    controls->addWidget(windowBox_);
    controls->addSpacing(12);
    controls->addWidget(new QLabel(tr("Difference:"), this));
    controls->addWidget(diffABox_);
    controls->addWidget(new QLabel(QStringLiteral("−"), this));
    controls->addWidget(diffBBox_);
    controls->addSpacing(12);
    controls->addWidget(runningBox_);
    controls->addStretch(1);
    layout->addLayout(controls);

    plot_ = makePlot(this);
    plot_->setAutoAddPlottableToLegend(false);
    layout->addWidget(plot_, 1);
    link_ = new TokenPlotLink(plot_);
    link_->setTokenAxis(tokenAxis());
    connect(link_, &TokenPlotLink::rangeApplied, this, [this] { refreshLod(); });
    connect(plot_, &QCustomPlot::mouseMove, this, &BptView::showTooltip);
    connect(plot_, &QCustomPlot::afterLayout, this, [this] { refreshLod(); });

    connect(rawBox_, &QCheckBox::toggled, this, &BptView::setShowRaw);
    connect(runningBox_, &QCheckBox::toggled, this, &BptView::setShowRunningMean);
    connect(windowBox_, &QComboBox::activated, this, [this](int index) { setSmoothingWindow(windowBox_->itemData(index).toInt()); });
    auto diffChanged = [this] { setDifferenceModels(diffABox_->currentData().toInt(), diffBBox_->currentData().toInt()); };
    connect(diffABox_, &QComboBox::activated, this, diffChanged);
    connect(diffBBox_, &QComboBox::activated, this, diffChanged);
    rebuildPlot();
}

void BptView::onTokenAxisChanged(TokenAxis* axis) {
    if (link_) link_->setTokenAxis(axis);
}

QCPGraph* BptView::rawGraph(int model) const {
    return model >= 0 && model < static_cast<int>(rawGraphs_.size()) ? rawGraphs_[static_cast<size_t>(model)].data() : nullptr;
}
QCPGraph* BptView::smoothedGraph(int model) const {
    return model >= 0 && model < static_cast<int>(smoothGraphs_.size()) ? smoothGraphs_[static_cast<size_t>(model)].data() : nullptr;
}
QCPGraph* BptView::runningMeanGraph(int model) const {
    return model >= 0 && model < static_cast<int>(runningGraphs_.size()) ? runningGraphs_[static_cast<size_t>(model)].data()
                                                                        : nullptr;
}

void BptView::setSmoothingWindow(int tokens) {
    tokens = std::max(tokens, 1);
    if (tokens == window_) return;
    window_ = tokens;
    const int index = windowBox_->findData(window_);
    if (index >= 0) windowBox_->setCurrentIndex(index);
    computeSmoothed();
    rebuildPlot();
    emit optionsChanged();
}

void BptView::setShowRaw(bool show) {
    if (show == showRaw_) return;
    showRaw_ = show;
    rawBox_->setChecked(show);
    rebuildPlot();
    emit optionsChanged();
}

void BptView::setShowRunningMean(bool show) {
    if (show == showRunning_) return;
    showRunning_ = show;
    runningBox_->setChecked(show);
    rebuildPlot();
    emit optionsChanged();
}

void BptView::setDifferenceModels(int a, int b) {
    if (a == diffA_ && b == diffB_) return;
    diffA_ = a;
    diffB_ = b;
    updateControls();
    computeSmoothed();
    rebuildPlot();
    emit optionsChanged();
}

void BptView::onResultChanged() {
    const int n = result() ? static_cast<int>(result()->models.size()) : 0;
    std::tie(diffA_, diffB_) = resolveDifference(diffA_, diffB_, n);
    updateControls();
    auto prepared = std::static_pointer_cast<const BptCurves>(preparedData());
    if (prepared && prepared->window == window_ && prepared->diffA == diffA_ && prepared->diffB == diffB_ &&
        prepared->raw.size() == static_cast<size_t>(n)) {
        raw_ = prepared->raw;
        running_ = prepared->running;
        smooth_ = prepared->smooth;
        diff_ = prepared->diff;
    } else {
        computeCurves();
    }
    rebuildPlot();
}

Preparer BptView::preparer() const {
    const int window = window_;
    const int a = diffA_;
    const int b = diffB_;
    return [window, a, b](const AnalysisResult& r) -> PreparedData { return deriveCurves(r, window, a, b, true); };
}

void BptView::onStyleChanged() { rebuildPlot(); }

void BptView::onTokenRangeChanged(double, double) { refreshLod(); }

void BptView::updateControls() {
    const QSignalBlocker blockA(diffABox_);
    const QSignalBlocker blockB(diffBBox_);
    diffABox_->clear();
    diffBBox_->clear();
    diffABox_->addItem(tr("none"), -1);
    diffBBox_->addItem(tr("none"), -1);
    if (result()) {
        for (int m = 0; m < static_cast<int>(result()->models.size()); ++m) {
            diffABox_->addItem(modelName(*result(), m), m);
            diffBBox_->addItem(modelName(*result(), m), m);
        }
    }
    diffABox_->setCurrentIndex(std::max(0, diffABox_->findData(diffA_)));
    diffBBox_->setCurrentIndex(std::max(0, diffBBox_->findData(diffB_)));
}

std::vector<float> BptView::differenceValues() const {
    return result() ? differenceOf(*result(), diffA_, diffB_) : std::vector<float>();
}

void BptView::computeCurves() {
    raw_.clear();
    running_.clear();
    smooth_.clear();
    diff_ = LodCurve();
    if (!result()) return;
    auto c = deriveCurves(*result(), window_, diffA_, diffB_, true);
    raw_ = std::move(c->raw);
    running_ = std::move(c->running);
    smooth_ = std::move(c->smooth);
    diff_ = std::move(c->diff);
}

void BptView::computeSmoothed() {
    smooth_.clear();
    diff_ = LodCurve();
    if (!result()) return;
    auto c = deriveCurves(*result(), window_, diffA_, diffB_, false);
    smooth_ = std::move(c->smooth);
    diff_ = std::move(c->diff);
}

void BptView::rebuildPlot() {
    plot_->clearItems();
    plot_->clearPlottables();
    plot_->plotLayout()->clear();
    rects_.clear();
    rawGraphs_.clear();
    smoothGraphs_.clear();
    runningGraphs_.clear();
    diffGraph_ = nullptr;
    captionElement_ = nullptr;

    const FigureStyle& style = figureStyle();
    auto* group = plot_->findChild<QCPMarginGroup*>(QStringLiteral("bptMargins"));
    if (!group) {
        group = new QCPMarginGroup(plot_);
        group->setObjectName(QStringLiteral("bptMargins"));
    }
    auto addRect = [&](const QString& yLabel, int stretch) {
        auto* rect = new QCPAxisRect(plot_);
        const int row = plot_->plotLayout()->rowCount();
        plot_->plotLayout()->addElement(row, 0, rect);
        plot_->plotLayout()->setRowStretchFactor(row, stretch);
        rect->setMarginGroup(QCP::MarginSides(QCP::msLeft) | QCP::msRight, group);
        rect->axis(QCPAxis::atLeft)->setLabel(yLabel);
        rect->axis(QCPAxis::atBottom)->setTickLabels(false);
        rects_.append(rect);
        return rect;
    };

    const AnalysisResult* r = result().get();
    const int models = r ? static_cast<int>(r->models.size()) : 0;
    const auto colors = r ? modelColors(*r) : QVector<QColor>();
    const QString windowText = window_ > 1 ? tr("%1-token mean").arg(window_) : QString();

    // One legend for all panels, above them: the model colours are the same in every panel,
    // and a legend inside a panel would hide data.
    auto* header = new QCPLayoutGrid;
    plot_->plotLayout()->addElement(0, 0, header);
    plot_->plotLayout()->setRowStretchFactor(0, 0.001);
    header->setRowSpacing(0);
    header->setColumnSpacing(0);
    // Centred: empty stretching columns on both sides of the legend's column.
    header->expandTo(2, 3);
    header->setColumnStretchFactors({1.0, 0.001, 1.0});
    auto* mainLegend = new QCPLegend;
    header->addElement(0, 1, mainLegend);
    mainLegend->setLayer(QStringLiteral("legend"));
    mainLegend->setFillOrder(QCPLegend::foColumnsFirst);
    mainLegend->setWrap(std::max(1, std::min(models, 3)));
    if (models > 0) {
        QString caption = tr("per token");
        if (window_ > 1) caption = showRaw_ ? tr("thin: per token, thick: %1").arg(windowText) : windowText;
        auto* text = new QCPTextElement(plot_, caption, style.legendFont);
        text->setTextColor(QColor(70, 70, 70));
        text->setMargins(QMargins(0, 0, 0, 1));
        header->addElement(1, 1, text);
        captionElement_ = text;
    }

    // Panel 1: per-token bpt.
    QCPAxisRect* main = addRect(tr("bits per token"), 3);
    double top = 1.0;
    for (int m = 0; m < models; ++m) {
        const QColor c = colors[m];
        if (showRaw_) {
            QCPGraph* g = plot_->addGraph(main->axis(QCPAxis::atBottom), main->axis(QCPAxis::atLeft));
            QColor light = c;
            light.setAlpha(window_ > 1 ? 70 : 200);
            g->setPen(curvePen(light, style.thinLineWidth));
            // Antialiasing thousands of full-height zigzags doubles the frame time on screen;
            // figures keep it.
            g->setAntialiased(style.paper);
            g->setName(modelName(*r, m));
            g->setData(raw_[static_cast<size_t>(m)].full());
            if (window_ <= 1) g->addToLegend(mainLegend);
            rawGraphs_.push_back(g);
            top = std::max(top, finiteQuantile(r->models[static_cast<size_t>(m)].bpt, 0.995));
        } else {
            rawGraphs_.push_back(nullptr);
        }
    }
    for (int m = 0; m < models; ++m) {
        if (window_ > 1) {
            QCPGraph* g = plot_->addGraph(main->axis(QCPAxis::atBottom), main->axis(QCPAxis::atLeft));
            g->setPen(curvePen(colors[m], style.lineWidth));
            g->setName(modelName(*r, m));
            g->setData(smooth_[static_cast<size_t>(m)].full());
            g->addToLegend(mainLegend);
            smoothGraphs_.push_back(g);
            top = std::max(top, curveRange(smooth_[static_cast<size_t>(m)]).upper);
        } else {
            smoothGraphs_.push_back(nullptr);
        }
    }
    main->axis(QCPAxis::atLeft)->setRange(0.0, top * 1.05);

    // Panel 2: difference of two models.
    if (!diff_.empty()) {
        const int titleRow = plot_->plotLayout()->rowCount();
        auto* title = new QCPTextElement(
            plot_,
            tr("Δ = %1 − %2%3").arg(modelName(*r, diffA_), modelName(*r, diffB_), window_ > 1 ? QStringLiteral(", ") + windowText : QString()),
            style.legendFont);
        title->setTextColor(QColor(40, 40, 40));
        title->setMargins(QMargins(0, style.paper ? 2 : 4, 0, 0));
        plot_->plotLayout()->addElement(titleRow, 0, title);
        plot_->plotLayout()->setRowStretchFactor(titleRow, 0.001);
        QCPAxisRect* rect = addRect(tr("Δ bpt"), 2);
        QCPGraph* g = plot_->addGraph(rect->axis(QCPAxis::atBottom), rect->axis(QCPAxis::atLeft));
        g->setPen(curvePen(QColor(60, 60, 60), style.lineWidth));
        // No fill: filling a zigzag polygon of thousands of points costs the raster engine
        // hundreds of milliseconds per frame.
        g->setName(title->text());
        g->setData(diff_.full());
        diffGraph_ = g;
        const QCPRange range = curveRange(diff_);
        double extent = std::max(std::abs(range.lower), std::abs(range.upper));
        if (window_ <= 1) extent = std::max(1.0, finiteQuantile(differenceValues(), 0.995));
        rect->axis(QCPAxis::atLeft)->setRange(-1.1 * extent, 1.1 * extent);
    }

    // Panel 3: running mean by position.
    if (showRunning_ && models > 0) {
        QCPAxisRect* rect = addRect(tr("mean bpt so far"), 2);
        double lo = std::numeric_limits<double>::infinity();
        double hi = -lo;
        for (int m = 0; m < models; ++m) {
            QCPGraph* g = plot_->addGraph(rect->axis(QCPAxis::atBottom), rect->axis(QCPAxis::atLeft));
            g->setPen(curvePen(colors[m], style.lineWidth));
            g->setName(modelName(*r, m));
            g->setData(running_[static_cast<size_t>(m)].full());
            runningGraphs_.push_back(g);
            // The first few tokens swing wildly; scale to the settled part of the curve.
            const auto& data = *running_[static_cast<size_t>(m)].full();
            const int skip = std::min(16, std::max(0, data.size() / 50));
            for (auto it = data.constBegin() + skip; it != data.constEnd(); ++it) {
                lo = std::min(lo, it->value);
                hi = std::max(hi, it->value);
            }
        }
        rect->axis(QCPAxis::atLeft)->setRange(paddedRange(lo, hi, 0.1));
    }

    if (!rects_.isEmpty()) {
        QCPAxis* bottom = rects_.back()->axis(QCPAxis::atBottom);
        bottom->setTickLabels(true);
        bottom->setLabel(tr("token position"));
    }
    QList<QCPAxis*> xAxes;
    for (QCPAxisRect* rect : rects_) {
        styleAxisRect(rect, style);
        xAxes.append(rect->axis(QCPAxis::atBottom));
    }
    styleLegend(mainLegend, style);
    mainLegend->setBorderPen(Qt::NoPen);
    mainLegend->setBrush(Qt::NoBrush);
    if (!diff_.empty() && rects_.size() > 1) {
        // A visible zero line: the sign is the message of this panel.
        rects_[1]->axis(QCPAxis::atLeft)->grid()->setZeroLinePen(QPen(QColor(0, 0, 0, 120), style.thinLineWidth));
    }
    link_->setAxes(xAxes);
    refreshLod();
    plot_->replot(QCustomPlot::rpQueuedReplot);
}

void BptView::refreshLod() {
    for (size_t m = 0; m < rawGraphs_.size() && m < raw_.size(); ++m) applyLod(rawGraphs_[m], raw_[m]);
    for (size_t m = 0; m < smoothGraphs_.size() && m < smooth_.size(); ++m) applyLod(smoothGraphs_[m], smooth_[m]);
    for (size_t m = 0; m < runningGraphs_.size() && m < running_.size(); ++m) applyLod(runningGraphs_[m], running_[m]);
    if (diffGraph_) applyLod(diffGraph_, diff_);
}

void BptView::showTooltip(QMouseEvent* event) {
    if (event->buttons() != Qt::NoButton || !result() || rects_.isEmpty()) return;
    const AnalysisResult& r = *result();
    QCPAxisRect* rect = plot_->axisRectAt(event->position());
    if (!rect) {
        QToolTip::hideText();
        return;
    }
    const auto token = static_cast<int64_t>(std::llround(rect->axis(QCPAxis::atBottom)->pixelToCoord(event->position().x())));
    if (token < 0 || token >= r.token_count()) return;
    QString html = tr("<b>token %1</b> <code>%2</code><table>")
                       .arg(token)
                       .arg(printableToken(tokenText(r, token)).toHtmlEscaped());
    const auto colors = modelColors(r);
    for (int m = 0; m < static_cast<int>(r.models.size()); ++m) {
        const float v = r.models[static_cast<size_t>(m)].bpt[static_cast<size_t>(token)];
        html += QStringLiteral("<tr><td><font color='%1'>■</font> %2</td><td align='right'>%3</td></tr>")
                    .arg(colors[m].name(), modelName(r, m).toHtmlEscaped(),
                         std::isnan(v) ? tr("no context") : tr("%1 bits").arg(v, 0, 'f', 2));
    }
    html += QStringLiteral("</table>");
    QToolTip::showText(event->globalPosition().toPoint(), html, plot_);
}

double BptView::figureAspect(const FigurePreset& preset) const {
    const int extra = (diff_.empty() ? 0 : 1) + (showRunning_ ? 1 : 0);
    return preset.widthInches < 5 ? 0.5 + 0.25 * extra : 0.3 + 0.12 * extra;
}

void BptView::renderFigure(QCPPainter* painter, const QSize& size) {
    refreshLod();
    plot_->toPainter(painter, size.width(), size.height());
}

QStringList BptView::writeCsv(const QString& basePath, CsvRange range) const {
    const QString path = basePath + QStringLiteral(".csv");
    CsvWriter csv(path);
    const AnalysisResult* r = result().get();
    QStringList header{QStringLiteral("token"), QStringLiteral("byte_offset"), QStringLiteral("token_text")};
    std::vector<std::vector<double>> smooth;
    std::vector<std::vector<double>> running;
    std::vector<double> diff;
    if (r) {
        for (int m = 0; m < static_cast<int>(r->models.size()); ++m) {
            const QString name = modelName(*r, m);
            header << QStringLiteral("bpt_%1").arg(name) << QStringLiteral("smoothed%1_%2").arg(window_).arg(name)
                   << QStringLiteral("running_mean_%1").arg(name);
            smooth.push_back(movingAverage(r->models[static_cast<size_t>(m)].bpt, window_));
            running.push_back(runningMean(r->models[static_cast<size_t>(m)].bpt));
        }
        const auto d = differenceValues();
        if (!d.empty()) {
            header << QStringLiteral("diff_smoothed%1_%2_minus_%3").arg(window_).arg(modelName(*r, diffA_), modelName(*r, diffB_));
            diff = movingAverage(d, window_);
        }
    }
    csv.row(header);
    const auto [begin, end] = csvTokenSpan(range);
    for (qint64 i = begin; r && i < end; ++i) {
        const auto t = static_cast<size_t>(i);
        QStringList row{QString::number(i),
                        t < r->byte_offsets.size() ? QString::number(r->byte_offsets[t]) : QString(),
                        printableToken(tokenText(*r, i))};
        for (size_t m = 0; m < r->models.size(); ++m) {
            const auto& bpt = r->models[m].bpt;
            row << CsvWriter::number(t < bpt.size() ? bpt[t] : kNaN) << CsvWriter::number(t < smooth[m].size() ? smooth[m][t] : kNaN)
                << CsvWriter::number(t < running[m].size() ? running[m][t] : kNaN);
        }
        if (!diff.empty()) row << CsvWriter::number(t < diff.size() ? diff[t] : kNaN);
        csv.row(row);
    }
    csv.close();
    return {path};
}

}  // namespace harmonic::views

#include "views/levels_view.h"

#include <QCheckBox>
#include <QToolTip>
#include <algorithm>
#include <cmath>
#include <limits>

#include "views/csv.h"
#include "views/derived.h"

namespace harmonic::views {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Heatmap cells along time: enough for a 4K screen; rows beyond this are merged by nearest row.
constexpr int64_t kMaxCells = 8192;
// z-scores beyond this are saturated: a few outlier steps should not wash out the picture.
constexpr double kZRange = 2.5;
}  // namespace

LevelsView::LevelsView(QWidget* parent) : ModelPickerView(parent) {
    sortBox_ = new QCheckBox(tr("Sort channels by τ"), this);
    sortBox_->setChecked(sortByTau_);
    sortBox_->setToolTip(tr("Order channels by their learned timescale, fast at the bottom"));
    normalizeBox_ = new QCheckBox(tr("Normalise channels"), this);
    normalizeBox_->setChecked(normalize_);
    normalizeBox_->setToolTip(tr("Show each channel as a z-score over time, so quiet channels stay visible"));
    controls()->addSpacing(12);
    controls()->addWidget(sortBox_);
    controls()->addWidget(normalizeBox_);
    controls()->addStretch(1);
    plot_ = makePlot(this);
    // The window decides how tall the levels are; the plot's own hint (every panel's margins) would not fit a small screen.
    plot_->setMinimumHeight(160);
    plot_->setAutoAddPlottableToLegend(false);
    viewLayout()->addWidget(plot_, 1);
    link_ = new TokenPlotLink(plot_);
    link_->setTokenAxis(tokenAxis());
    connect(link_, &TokenPlotLink::rangeApplied, this, [this] { refreshLod(); });
    connect(plot_, &QCustomPlot::afterLayout, this, [this] { refreshLod(); });
    connect(plot_, &QCustomPlot::mouseMove, this, &LevelsView::showTooltip);
    connect(sortBox_, &QCheckBox::toggled, this, &LevelsView::setSortByTau);
    connect(normalizeBox_, &QCheckBox::toggled, this, &LevelsView::setNormalize);
    rebuildPlot();
}

void LevelsView::onTokenAxisChanged(TokenAxis* axis) {
    if (link_) link_->setTokenAxis(axis);
}

QCPColorMap* LevelsView::colorMap(int level) const {
    return level >= 0 && level < static_cast<int>(maps_.size()) ? maps_[static_cast<size_t>(level)].data() : nullptr;
}

QCPGraph* LevelsView::errorGraph(int level) const {
    return level >= 0 && level < static_cast<int>(errorGraphs_.size()) ? errorGraphs_[static_cast<size_t>(level)].data() : nullptr;
}

std::vector<int> LevelsView::channelOrder(int level) const {
    const ModelTrace* m = currentModel();
    if (!m || level < 0 || level >= static_cast<int>(m->levels.size())) return {};
    const LevelTrace& trace = m->levels[static_cast<size_t>(level)];
    if (sortByTau_) return channelOrderByTau(trace);
    std::vector<int> order(static_cast<size_t>(std::max<int64_t>(trace.channels, 0)));
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    return order;
}

double LevelsView::displayValue(int level, int64_t row, int channel) const {
    const ModelTrace* m = currentModel();
    if (!m || level < 0 || level >= static_cast<int>(m->levels.size())) return kNaN;
    const LevelTrace& trace = m->levels[static_cast<size_t>(level)];
    if (!hasValidHeatmap(trace) || row < 0 || row >= trace.rows || channel < 0 || channel >= trace.channels) return kNaN;
    const double v = trace.hidden[static_cast<size_t>(row * trace.channels + channel)];
    if (!normalize_) return v;
    const auto l = static_cast<size_t>(level);
    const auto c = static_cast<size_t>(channel);
    return (v - channelMean_[l][c]) / channelScale_[l][c];
}

void LevelsView::setSortByTau(bool sort) { setCheckedOption(sortByTau_, sort, sortBox_); }

void LevelsView::setNormalize(bool normalize) { setCheckedOption(normalize_, normalize, normalizeBox_); }

void LevelsView::onStyleChanged() { rebuildPlot(); }

void LevelsView::rebuildPlot() {
    plot_->clearItems();
    plot_->clearPlottables();
    plot_->plotLayout()->clear();
    maps_.clear();
    errorGraphs_.clear();
    errorCurves_.clear();
    channelMean_.clear();
    channelScale_.clear();
    const FigureStyle& style = figureStyle();
    auto* group = plot_->findChild<QCPMarginGroup*>(QStringLiteral("levelMargins"));
    if (!group) {
        group = new QCPMarginGroup(plot_);
        group->setObjectName(QStringLiteral("levelMargins"));
    }
    const ModelTrace* model = currentModel();
    QList<QCPAxisRect*> rects;
    QList<QCPAxis*> xAxes;
    auto* grid = plot_->plotLayout();
    grid->setColumnSpacing(4);

    const int levelCount = model ? static_cast<int>(model->levels.size()) : 0;
    // Slow levels on top, like the hierarchy they are.
    for (int l = levelCount - 1; l >= 0; --l) {
        const LevelTrace& level = model->levels[static_cast<size_t>(l)];
        // Statistics for per-channel normalisation (over the stored rows).
        std::vector<double> mean(static_cast<size_t>(std::max<int64_t>(level.channels, 0)), 0.0);
        std::vector<double> scale(mean.size(), 1.0);
        for (int64_t c = 0; c < level.channels && hasValidHeatmap(level); ++c) {
            double s = 0, s2 = 0;
            int64_t k = 0;
            for (int64_t r = 0; r < level.rows; ++r) {
                const double v = level.hidden[static_cast<size_t>(r * level.channels + c)];
                if (!std::isfinite(v)) continue;
                s += v;
                s2 += v * v;
                ++k;
            }
            if (k > 0) {
                mean[static_cast<size_t>(c)] = s / static_cast<double>(k);
                const double var = std::max(0.0, s2 / static_cast<double>(k) - mean[static_cast<size_t>(c)] * mean[static_cast<size_t>(c)]);
                scale[static_cast<size_t>(c)] = var > 1e-20 ? std::sqrt(var) : 1.0;
            }
        }
        channelMean_.insert(channelMean_.begin(), mean);
        channelScale_.insert(channelScale_.begin(), scale);
    }
    maps_.assign(static_cast<size_t>(levelCount), nullptr);

    for (int l = levelCount - 1; l >= 0; --l) {
        const LevelTrace& level = model->levels[static_cast<size_t>(l)];
        const int row = grid->rowCount();
        auto* rect = new QCPAxisRect(plot_);
        grid->addElement(row, 0, rect);
        grid->setRowStretchFactor(row, 2);
        rect->setMarginGroup(QCP::MarginSides(QCP::msLeft) | QCP::msRight, group);
        const QString levelName = QString::fromStdString(level.name.empty() ? "level " + std::to_string(l + 1) : level.name);
        const QString stride = level.stride > 1 ? QStringLiteral(" (÷%1)").arg(level.stride) : QString();
        const bool haveTau = static_cast<int64_t>(level.channel_tau.size()) == level.channels;
        rect->axis(QCPAxis::atLeft)->setLabel(levelName + stride + QLatin1Char('\n') +
                                                (sortByTau_ && haveTau ? tr("ch. by τ") : tr("channel")));
        rect->axis(QCPAxis::atLeft)->setProperty(kLabelAlternatives, QStringList{levelName + stride,
                                                                                  QStringLiteral("L%1%2").arg(l + 1).arg(stride)});
        rect->axis(QCPAxis::atBottom)->setTickLabels(false);
        rect->axis(QCPAxis::atLeft)->grid()->setVisible(false);
        rect->axis(QCPAxis::atBottom)->grid()->setVisible(false);
        rects.append(rect);
        xAxes.append(rect->axis(QCPAxis::atBottom));
        if (!hasValidHeatmap(level)) continue;

        // Rows may cover unequal token spans (the last one is often short), while a QCPColorMap
        // has equal cells: resample at the narrowest row's width so every row sits exactly over
        // the tokens it covers.
        const auto& b = level.row_token_begin;
        int64_t narrowest = std::numeric_limits<int64_t>::max();
        for (int64_t r = 0; r < level.rows; ++r)
            narrowest = std::min(narrowest, std::max<int64_t>(1, b[static_cast<size_t>(r) + 1] - b[static_cast<size_t>(r)]));
        const double span = static_cast<double>(std::max<int64_t>(b.back() - b.front(), 1));
        int64_t cells = static_cast<int64_t>(std::ceil(span / static_cast<double>(narrowest)));
        cells = std::clamp<int64_t>(cells, 1, kMaxCells);
        const double cellWidth = span / static_cast<double>(cells);
        const std::vector<int> order = channelOrder(l);
        auto* map = new QCPColorMap(rect->axis(QCPAxis::atBottom), rect->axis(QCPAxis::atLeft));
        const double x0 = static_cast<double>(b.front()) - 0.5;
        map->data()->setSize(static_cast<int>(cells), static_cast<int>(level.channels));
        map->data()->setRange(QCPRange(x0 + 0.5 * cellWidth, x0 + (static_cast<double>(cells) - 0.5) * cellWidth),
                              QCPRange(0, static_cast<double>(level.channels - 1)));
        int64_t r = 0;
        for (int64_t k = 0; k < cells; ++k) {
            const double centre = static_cast<double>(b.front()) + (static_cast<double>(k) + 0.5) * cellWidth;
            while (r + 1 < level.rows && static_cast<double>(b[static_cast<size_t>(r) + 1]) <= centre) ++r;
            for (int64_t c = 0; c < level.channels; ++c)
                map->data()->setCell(static_cast<int>(k), static_cast<int>(c), displayValue(l, r, order[static_cast<size_t>(c)]));
        }
        map->setInterpolate(false);
        map->setTightBoundary(false);
        map->setGradient(toGradient(ColorMap::diverging()));
        double extent = kZRange;
        if (!normalize_) {
            std::vector<float> abs(level.hidden.size());
            for (size_t i = 0; i < abs.size(); ++i) abs[i] = std::abs(level.hidden[i]);
            extent = std::max(1e-6, finiteQuantile(abs, 0.99));
        }
        map->setDataRange(QCPRange(-extent, extent));
        auto* scale = new QCPColorScale(plot_);
        grid->addElement(row, 1, scale);
        scale->setType(QCPAxis::atRight);
        scale->setMarginGroup(QCP::MarginSides(QCP::msTop) | QCP::msBottom, group);
        map->setColorScale(scale);
        // The scale hands its own (default) gradient to the map: set ours after linking.
        map->setGradient(toGradient(ColorMap::diverging()));
        map->setDataRange(QCPRange(-extent, extent));
        scale->axis()->setLabel(normalize_ ? tr("z") : tr("state"));
        scale->axis()->setTicker(QSharedPointer<QCPAxisTicker>::create());
        scale->axis()->ticker()->setTickCount(3);
        styleColorScale(scale, style);
        rect->axis(QCPAxis::atLeft)->setRange(-0.5, static_cast<double>(level.channels) - 0.5);
        rect->axis(QCPAxis::atLeft)->setTickLabels(true);
        maps_[static_cast<size_t>(l)] = map;
    }

    // Prediction-error magnitude of each level that has one.
    bool anyError = false;
    if (model)
        for (const auto& level : model->levels) anyError = anyError || !level.error_norm.empty();
    errorGraphs_.assign(static_cast<size_t>(levelCount), nullptr);
    errorCurves_.assign(static_cast<size_t>(levelCount), LodCurve());
    if (anyError) {
        const int row = grid->rowCount();
        auto* rect = new QCPAxisRect(plot_);
        grid->addElement(row, 0, rect);
        grid->setRowStretchFactor(row, 2);
        rect->setMarginGroup(QCP::MarginSides(QCP::msLeft) | QCP::msRight, group);
        rect->axis(QCPAxis::atLeft)->setLabel(tr("prediction\nerror ‖e‖"));
        rect->axis(QCPAxis::atLeft)->setProperty(kLabelAlternatives, QStringList{tr("error ‖e‖"), tr("‖e‖")});
        auto* legend = new QCPLegend;
        rect->insetLayout()->addElement(legend, Qt::AlignTop | Qt::AlignRight);
        legend->setLayer(QStringLiteral("legend"));
        double hi = 0;
        for (int l = 0; l < levelCount; ++l) {
            const LevelTrace& level = model->levels[static_cast<size_t>(l)];
            if (level.error_norm.empty()) continue;
            std::vector<double> keys(level.error_norm.size());
            std::vector<double> values(level.error_norm.size());
            for (size_t j = 0; j < keys.size(); ++j) {
                keys[j] = j < level.error_token.size() ? static_cast<double>(level.error_token[j])
                                                       : static_cast<double>(j) * static_cast<double>(level.stride);
                values[j] = level.error_norm[j];
            }
            errorCurves_[static_cast<size_t>(l)] = LodCurve(keys, values);
            QCPGraph* g = plot_->addGraph(rect->axis(QCPAxis::atBottom), rect->axis(QCPAxis::atLeft));
            g->setPen(curvePen(levelColor(l, levelCount), style.lineWidth));
            g->setName(QString::fromStdString(level.name));
            g->setData(errorCurves_[static_cast<size_t>(l)].full());
            g->addToLegend(legend);
            errorGraphs_[static_cast<size_t>(l)] = g;
            hi = std::max(hi, finiteQuantile(level.error_norm, 0.995));
        }
        rect->axis(QCPAxis::atLeft)->setRange(0, std::max(hi, 1e-6) * 1.1);
        rects.append(rect);
        xAxes.append(rect->axis(QCPAxis::atBottom));
    }
    for (QCPAxisRect* rect : rects) styleAxisRect(rect, style);
    for (QCPAxisRect* rect : rects) {
        // Heatmaps need no grid; the error panel keeps its horizontal one.
        rect->axis(QCPAxis::atBottom)->grid()->setVisible(false);
    }
    if (!rects.isEmpty()) {
        QCPAxis* bottom = rects.back()->axis(QCPAxis::atBottom);
        bottom->setTickLabels(true);
        bottom->setLabel(tr("token position"));
    } else {
        auto* rect = new QCPAxisRect(plot_);
        grid->addElement(0, 0, rect);
        auto* text = new QCPItemText(plot_);
        text->setClipAxisRect(rect);
        text->position->setAxisRect(rect);
        text->position->setType(QCPItemPosition::ptAxisRectRatio);
        text->position->setCoords(0.5, 0.5);
        text->setText(result() ? tr("No model with level traces in this analysis") : tr("No analysis yet"));
        styleAxisRect(rect, style);
        xAxes.append(rect->axis(QCPAxis::atBottom));
    }
    grid->setColumnStretchFactor(0, 1);
    if (grid->columnCount() > 1) grid->setColumnStretchFactor(1, 0.01);
    link_->setAxes(xAxes);
    refreshLod();
    plot_->replot(QCustomPlot::rpQueuedReplot);
}

void LevelsView::showTooltip(QMouseEvent* event) {
    const ModelTrace* model = currentModel();
    QCPAxisRect* rect = plot_->axisRectAt(event->position());
    if (event->buttons() != Qt::NoButton || !model || !rect) return;
    for (int l = 0; l < static_cast<int>(maps_.size()); ++l) {
        QCPColorMap* map = maps_[static_cast<size_t>(l)];
        if (!map || map->keyAxis()->axisRect() != rect) continue;
        const LevelTrace& level = model->levels[static_cast<size_t>(l)];
        const double token = map->keyAxis()->pixelToCoord(event->position().x());
        const auto rank = static_cast<int64_t>(std::llround(map->valueAxis()->pixelToCoord(event->position().y())));
        const auto order = channelOrder(l);
        if (rank < 0 || rank >= static_cast<int64_t>(order.size())) return;
        const auto& b = level.row_token_begin;
        const auto it = std::upper_bound(b.begin(), b.end(), static_cast<int64_t>(std::floor(token + 0.5)));
        if (it == b.begin() || it == b.end()) return;
        const auto row = static_cast<int64_t>(it - b.begin()) - 1;
        const int channel = order[static_cast<size_t>(rank)];
        QString tau;
        if (static_cast<size_t>(channel) < level.channel_tau.size()) {
            const double steps = level.channel_tau[static_cast<size_t>(channel)];
            tau = tr(", τ = %1 steps = %2 tokens").arg(steps, 0, 'g', 3).arg(steps * static_cast<double>(level.stride), 0, 'g', 3);
        }
        QToolTip::showText(event->globalPosition().toPoint(),
                           tr("<b>%1</b> · tokens %2–%3 (row %4)<br>channel %5%6<br>value %7%8")
                               .arg(QString::fromStdString(level.name))
                               .arg(b[static_cast<size_t>(row)])
                               .arg(b[static_cast<size_t>(row) + 1] - 1)
                               .arg(row)
                               .arg(channel)
                               .arg(tau)
                               .arg(displayValue(l, row, channel), 0, 'g', 3)
                               .arg(normalize_ ? tr(" (z-score)") : QString()),
                           plot_);
        return;
    }
    QToolTip::hideText();
}

void LevelsView::refreshLod() {
    for (size_t l = 0; l < errorGraphs_.size() && l < errorCurves_.size(); ++l)
        if (errorGraphs_[l]) applyLod(errorGraphs_[l], errorCurves_[l]);
}

double LevelsView::figureAspect(const FigurePreset& preset) const {
    const ModelTrace* m = currentModel();
    const int levels = m ? static_cast<int>(m->levels.size()) : 1;
    bool error = false;
    if (m)
        for (const auto& level : m->levels) error = error || !level.error_norm.empty();
    const int panels = levels + (error ? 1 : 0);
    return preset.widthInches < 5 ? 0.1 + 0.26 * panels : 0.06 + 0.13 * panels;
}

void LevelsView::renderFigure(QCPPainter* painter, const QSize& size) {
    plot_->toPainter(painter, size.width(), size.height());
}

QStringList LevelsView::writeCsv(const QString& basePath, CsvRange range) const {
    QStringList files;
    const ModelTrace* model = currentModel();
    const auto [begin, end] = csvTokenSpan(range);
    {
        const QString path = basePath + QStringLiteral("_channels.csv");
        CsvWriter csv(path);
        csv.row({QStringLiteral("level"), QStringLiteral("display_row"), QStringLiteral("channel"), QStringLiteral("decay"),
                 QStringLiteral("tau_steps"), QStringLiteral("tau_tokens")});
        for (int l = 0; model && l < static_cast<int>(model->levels.size()); ++l) {
            const LevelTrace& level = model->levels[static_cast<size_t>(l)];
            const auto order = channelOrder(l);
            for (size_t k = 0; k < order.size(); ++k) {
                const auto c = static_cast<size_t>(order[k]);
                const double decay = c < level.channel_decay.size() ? level.channel_decay[c] : kNaN;
                const double tau = c < level.channel_tau.size() ? level.channel_tau[c] : kNaN;
                csv.row({QString::fromStdString(level.name), QString::number(k), QString::number(c), CsvWriter::number(decay),
                         CsvWriter::number(tau), CsvWriter::number(tau * static_cast<double>(level.stride))});
            }
        }
        csv.close();
        files << path;
    }
    for (int l = 0; model && l < static_cast<int>(model->levels.size()); ++l) {
        const LevelTrace& level = model->levels[static_cast<size_t>(l)];
        if (!hasValidHeatmap(level)) continue;
        const QString path = basePath + QStringLiteral("_heatmap_%1.csv").arg(safeFileName(QString::fromStdString(level.name)));
        CsvWriter csv(path);
        const auto order = channelOrder(l);
        QStringList header{QStringLiteral("row"), QStringLiteral("token_begin"), QStringLiteral("token_end")};
        for (int c : order) header << QStringLiteral("ch%1").arg(c);
        csv.row(header);
        std::vector<double> values;
        for (int64_t r = 0; r < level.rows; ++r) {
            const int64_t a = level.row_token_begin[static_cast<size_t>(r)];
            const int64_t b = level.row_token_begin[static_cast<size_t>(r) + 1];
            if (b <= begin || a >= end) continue;
            values.clear();
            for (int c : order) values.push_back(displayValue(l, r, c));
            csv.row({QString::number(r), QString::number(a), QString::number(b)}, values);
        }
        csv.close();
        files << path;
    }
    bool anyError = false;
    if (model)
        for (const auto& level : model->levels) anyError = anyError || !level.error_norm.empty();
    if (anyError) {
        const QString path = basePath + QStringLiteral("_error.csv");
        CsvWriter csv(path);
        csv.row({QStringLiteral("level"), QStringLiteral("step"), QStringLiteral("token"), QStringLiteral("error_norm")});
        for (const auto& level : model->levels) {
            for (size_t j = 0; j < level.error_norm.size(); ++j) {
                const int64_t token = j < level.error_token.size() ? level.error_token[j] : static_cast<int64_t>(j) * level.stride;
                if (token < begin || token >= end) continue;
                csv.row({QString::fromStdString(level.name), QString::number(j), QString::number(token),
                         CsvWriter::number(level.error_norm[j])});
            }
        }
        csv.close();
        files << path;
    }
    return files;
}

}  // namespace harmonic::views

#include "views/timescale_view.h"

#include <QResizeEvent>
#include <algorithm>
#include <cmath>
#include <limits>

#include "views/csv.h"

namespace harmonic::views {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kBins = 24;
// Figures narrower than this stack the three panels vertically.
constexpr int kStackBelow = 420;

std::vector<double> tauTokens(const LevelTrace& level) {
    std::vector<double> taus;
    taus.reserve(level.channel_tau.size());
    for (float t : level.channel_tau) taus.push_back(static_cast<double>(t) * static_cast<double>(level.stride));
    return taus;
}

QString tauText(double tokens) {
    if (!std::isfinite(tokens) || tokens <= 0) return QStringLiteral("–");
    if (tokens >= 100) return QString::number(std::round(tokens), 'f', 0);
    return QString::number(tokens, 'g', 2);
}
}  // namespace

TimescaleView::TimescaleView(QWidget* parent) : ModelPickerView(parent) {
    controls()->addStretch(1);
    plot_ = makePlot(this);
    plot_->setAutoAddPlottableToLegend(false);
    // These panels are not on the token axis: free zoom in both directions.
    plot_->setInteractions(QCP::Interactions(QCP::iRangeDrag) | QCP::iRangeZoom);
    viewLayout()->addWidget(plot_, 1);
    rebuildPlot();
}

namespace {
QCPGraph* at(const std::vector<QPointer<QCPGraph>>& v, int i) {
    return i >= 0 && i < static_cast<int>(v.size()) ? v[static_cast<size_t>(i)].data() : nullptr;
}
}  // namespace

QCPGraph* TimescaleView::histogramGraph(int level) const { return at(histogram_, level); }
QCPGraph* TimescaleView::autocorrGraph(int level) const { return at(autocorr_, level); }
QCPGraph* TimescaleView::fitGraph(int level) const { return at(fit_, level); }
QCPGraph* TimescaleView::spectrumGraph(int level) const { return at(spectrum_, level); }

std::vector<double> TimescaleView::histogramFractions(int level) const {
    const ModelTrace* m = currentModel();
    if (!m || level < 0 || level >= static_cast<int>(m->levels.size()) || edges_.size() < 2) return {};
    const auto taus = tauTokens(m->levels[static_cast<size_t>(level)]);
    const size_t bins = edges_.size() - 1;
    std::vector<double> fraction(bins, 0.0);
    size_t total = 0;
    const double l0 = std::log10(edges_.front());
    const double l1 = std::log10(edges_.back());
    for (double t : taus) {
        if (!(std::isfinite(t) && t > 0)) continue;
        const auto b = static_cast<size_t>(std::clamp((std::log10(t) - l0) / (l1 - l0) * static_cast<double>(bins), 0.0,
                                                      static_cast<double>(bins) - 1.0));
        fraction[b] += 1.0;
        ++total;
    }
    if (total == 0) return {};
    for (double& f : fraction) f /= static_cast<double>(total);
    return fraction;
}

void TimescaleView::onStyleChanged() { rebuildPlot(); }

void TimescaleView::resizeEvent(QResizeEvent* event) {
    AnalysisView::resizeEvent(event);
    // Stacked only where the view is narrow and tall: a wide, low dock squashes stacked panels.
    const bool stacked = event->size().width() < 2 * kStackBelow && event->size().height() > event->size().width();
    if (stacked != stacked_ && !figureStyle().paper) {
        stacked_ = stacked;
        rebuildPlot();
    }
}

void TimescaleView::rebuildPlot() {
    plot_->clearItems();
    plot_->clearPlottables();
    plot_->plotLayout()->clear();
    histogram_.clear();
    autocorr_.clear();
    fit_.clear();
    spectrum_.clear();
    edges_.clear();
    const FigureStyle& style = figureStyle();
    const ModelTrace* model = currentModel();
    const int levels = model ? static_cast<int>(model->levels.size()) : 0;
    histogram_.assign(static_cast<size_t>(levels), nullptr);
    autocorr_.assign(static_cast<size_t>(levels), nullptr);
    fit_.assign(static_cast<size_t>(levels), nullptr);
    spectrum_.assign(static_cast<size_t>(levels), nullptr);

    auto* grid = plot_->plotLayout();
    grid->setColumnSpacing(style.paper ? 6 : 12);
    grid->setRowSpacing(style.paper ? 4 : 8);
    auto addRect = [&](int index) {
        auto* rect = new QCPAxisRect(plot_);
        if (stacked_) grid->addElement(index, 0, rect);
        else grid->addElement(0, index, rect);
        return rect;
    };
    QCPAxisRect* tauRect = addRect(0);
    QCPAxisRect* acRect = addRect(1);
    QCPAxisRect* specRect = addRect(2);
    setLogAxis(tauRect->axis(QCPAxis::atBottom));
    setLogAxis(acRect->axis(QCPAxis::atBottom));
    setLogAxis(specRect->axis(QCPAxis::atBottom));
    setLogAxis(specRect->axis(QCPAxis::atLeft));
    specRect->axis(QCPAxis::atLeft)->setNumberFormat(QStringLiteral("eb"));  // all powers of ten, one style
    tauRect->axis(QCPAxis::atBottom)->setLabel(tr("channel τ (tokens)"));
    tauRect->axis(QCPAxis::atLeft)->setLabel(tr("fraction of channels"));
    acRect->axis(QCPAxis::atBottom)->setLabel(tr("lag (tokens)"));
    acRect->axis(QCPAxis::atLeft)->setLabel(tr("autocorrelation"));
    specRect->axis(QCPAxis::atBottom)->setLabel(tr("frequency (cycles / token)"));
    specRect->axis(QCPAxis::atLeft)->setLabel(tr("power"));
    auto* legend = new QCPLegend;
    // Bottom left stays empty: autocorrelations start high at short lags.
    acRect->insetLayout()->addElement(legend, Qt::AlignBottom | Qt::AlignLeft);
    legend->setLayer(QStringLiteral("legend"));

    // Shared histogram bins over all levels, so the levels' distributions line up.
    std::vector<double> all;
    for (int l = 0; l < levels; ++l) {
        const auto t = tauTokens(model->levels[static_cast<size_t>(l)]);
        all.insert(all.end(), t.begin(), t.end());
    }
    edges_ = logHistogram(all, kBins).edges;

    double acMin = 0.0;
    double lagMin = std::numeric_limits<double>::infinity(), lagMax = 0;
    double fMin = std::numeric_limits<double>::infinity(), fMax = 0;
    double pMin = std::numeric_limits<double>::infinity(), pMax = 0;
    double fracMax = 0;
    for (int l = 0; l < levels; ++l) {
        const LevelTrace& level = model->levels[static_cast<size_t>(l)];
        const QColor color = levelColor(l, levels);
        const auto stride = static_cast<double>(level.stride);

        const auto fraction = histogramFractions(l);
        if (!fraction.empty()) {
            QVector<double> keys, values;
            for (size_t b = 0; b < fraction.size(); ++b) {
                keys << edges_[b];
                values << fraction[b];
                fracMax = std::max(fracMax, fraction[b]);
            }
            keys << edges_.back();
            values << fraction.back();
            QCPGraph* g = plot_->addGraph(tauRect->axis(QCPAxis::atBottom), tauRect->axis(QCPAxis::atLeft));
            g->setLineStyle(QCPGraph::lsStepLeft);
            g->setPen(curvePen(color, style.lineWidth));
            QColor fill = color;
            fill.setAlpha(40);
            g->setBrush(fill);
            g->setData(keys, values, true);
            g->setName(QString::fromStdString(level.name));
            histogram_[static_cast<size_t>(l)] = g;
            if (level.nominal_tau > 0) {
                auto* line = new QCPItemStraightLine(plot_);
                line->setClipAxisRect(tauRect);
                line->point1->setAxes(tauRect->axis(QCPAxis::atBottom), tauRect->axis(QCPAxis::atLeft));
                line->point2->setAxes(tauRect->axis(QCPAxis::atBottom), tauRect->axis(QCPAxis::atLeft));
                line->point1->setCoords(level.nominal_tau * stride, 0);
                line->point2->setCoords(level.nominal_tau * stride, 1);
                line->setPen(curvePen(color, style.thinLineWidth, Qt::DashLine));
            }
        }

        if (!level.autocorr.empty() && level.autocorr.size() == level.autocorr_lag.size()) {
            QVector<double> keys, values;
            for (size_t i = 0; i < level.autocorr.size(); ++i) {
                const double lag = static_cast<double>(level.autocorr_lag[i]) * stride;
                if (!(lag > 0) || !std::isfinite(level.autocorr[i])) continue;
                keys << lag;
                values << level.autocorr[i];
                acMin = std::min(acMin, static_cast<double>(level.autocorr[i]));
                lagMin = std::min(lagMin, lag);
                lagMax = std::max(lagMax, lag);
            }
            QCPGraph* g = plot_->addGraph(acRect->axis(QCPAxis::atBottom), acRect->axis(QCPAxis::atLeft));
            g->setPen(curvePen(color, style.lineWidth));
            g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, color, Qt::white, style.paper ? 2.5 : 4.0));
            g->setData(keys, values, true);
            g->setName(tr("%1: fit τ = %2 tok").arg(QString::fromStdString(level.name), tauText(level.fitted_tau_tokens)));
            g->addToLegend(legend);
            autocorr_[static_cast<size_t>(l)] = g;
            if (level.fitted_tau_tokens > 0 && !keys.isEmpty()) {
                QVector<double> fk, fv;
                const double a = keys.front();
                const double b = keys.back();
                for (int i = 0; i <= 60; ++i) {
                    const double lag = a * std::pow(b / a, i / 60.0);
                    fk << lag;
                    fv << std::exp(-lag / level.fitted_tau_tokens);
                }
                QCPGraph* f = plot_->addGraph(acRect->axis(QCPAxis::atBottom), acRect->axis(QCPAxis::atLeft));
                f->setPen(curvePen(color.darker(130), style.thinLineWidth * 1.5, Qt::DashLine));
                f->setData(fk, fv, true);
                f->setName(tr("fit"));
                fit_[static_cast<size_t>(l)] = f;
            }
        }

        if (!level.spectrum_power.empty() && level.spectrum_power.size() == level.spectrum_frequency.size()) {
            QVector<double> keys, values;
            for (size_t i = 0; i < level.spectrum_power.size(); ++i) {
                const double f = level.spectrum_frequency[i];
                const double p = level.spectrum_power[i];
                if (!(f > 0 && p > 0) || !std::isfinite(f) || !std::isfinite(p)) continue;
                keys << f;
                values << p;
                fMin = std::min(fMin, f);
                fMax = std::max(fMax, f);
                pMin = std::min(pMin, p);
                pMax = std::max(pMax, p);
            }
            QCPGraph* g = plot_->addGraph(specRect->axis(QCPAxis::atBottom), specRect->axis(QCPAxis::atLeft));
            g->setPen(curvePen(color, style.lineWidth));
            g->setData(keys, values, true);
            g->setName(QString::fromStdString(level.name));
            spectrum_[static_cast<size_t>(l)] = g;
        }
    }
    if (edges_.size() >= 2) tauRect->axis(QCPAxis::atBottom)->setRange(edges_.front(), edges_.back());
    else tauRect->axis(QCPAxis::atBottom)->setRange(1, 1000);
    tauRect->axis(QCPAxis::atLeft)->setRange(0, fracMax > 0 ? fracMax * 1.15 : 1.0);
    if (lagMax > 0) acRect->axis(QCPAxis::atBottom)->setRange(lagMin / 1.3, lagMax * 1.3);
    else acRect->axis(QCPAxis::atBottom)->setRange(1, 1000);
    acRect->axis(QCPAxis::atLeft)->setRange(std::min(acMin, 0.0) - 0.05, 1.05);
    if (fMax > 0) specRect->axis(QCPAxis::atBottom)->setRange(fMin / 1.3, fMax * 1.3);
    else specRect->axis(QCPAxis::atBottom)->setRange(1e-4, 0.5);
    if (pMax > 0) specRect->axis(QCPAxis::atLeft)->setRange(pMin / 2, pMax * 2);
    else specRect->axis(QCPAxis::atLeft)->setRange(1e-3, 1);
    for (QCPAxisRect* rect : {tauRect, acRect, specRect}) {
        rect->setRangeDrag(Qt::Horizontal | Qt::Vertical);
        rect->setRangeZoom(Qt::Horizontal | Qt::Vertical);
        styleAxisRect(rect, style);
    }
    if (levels == 0) {
        auto* text = new QCPItemText(plot_);
        text->setClipAxisRect(acRect);
        text->position->setAxisRect(acRect);
        text->position->setType(QCPItemPosition::ptAxisRectRatio);
        text->position->setCoords(0.5, 0.5);
        text->setText(result() ? tr("No model with level traces") : tr("No analysis yet"));
    }
    plot_->replot(QCustomPlot::rpQueuedReplot);
}

double TimescaleView::figureAspect(const FigurePreset& preset) const { return preset.widthPt() < kStackBelow ? 1.5 : 0.33; }

void TimescaleView::renderFigure(QCPPainter* painter, const QSize& size) {
    const bool stacked = size.width() < kStackBelow;
    const bool was = stacked_;
    if (stacked != stacked_) {
        stacked_ = stacked;
        rebuildPlot();
    }
    plot_->toPainter(painter, size.width(), size.height());
    if (stacked_ != was) {
        stacked_ = was;
        rebuildPlot();
    }
}

QStringList TimescaleView::writeCsv(const QString& basePath, CsvRange) const {
    // Not token-indexed: the whole statistics whatever the visible range.
    QStringList files;
    const ModelTrace* model = currentModel();
    const int levels = model ? static_cast<int>(model->levels.size()) : 0;
    {
        const QString path = basePath + QStringLiteral("_tau.csv");
        CsvWriter csv(path);
        csv.row({QStringLiteral("level"), QStringLiteral("stride"), QStringLiteral("channel"), QStringLiteral("decay"),
                 QStringLiteral("tau_steps"), QStringLiteral("tau_tokens")});
        for (int l = 0; l < levels; ++l) {
            const LevelTrace& level = model->levels[static_cast<size_t>(l)];
            for (size_t c = 0; c < level.channel_tau.size(); ++c)
                csv.row({QString::fromStdString(level.name), QString::number(level.stride), QString::number(c),
                         CsvWriter::number(c < level.channel_decay.size() ? level.channel_decay[c] : kNaN),
                         CsvWriter::number(level.channel_tau[c]),
                         CsvWriter::number(static_cast<double>(level.channel_tau[c]) * static_cast<double>(level.stride))});
        }
        csv.close();
        files << path;
    }
    {
        const QString path = basePath + QStringLiteral("_tau_histogram.csv");
        CsvWriter csv(path);
        csv.row({QStringLiteral("level"), QStringLiteral("tau_tokens_from"), QStringLiteral("tau_tokens_to"), QStringLiteral("fraction")});
        for (int l = 0; l < levels; ++l) {
            const auto fraction = histogramFractions(l);
            for (size_t b = 0; b < fraction.size(); ++b)
                csv.row({QString::fromStdString(model->levels[static_cast<size_t>(l)].name), CsvWriter::number(edges_[b]),
                         CsvWriter::number(edges_[b + 1]), CsvWriter::number(fraction[b])});
        }
        csv.close();
        files << path;
    }
    {
        const QString path = basePath + QStringLiteral("_autocorr.csv");
        CsvWriter csv(path);
        csv.row({QStringLiteral("level"), QStringLiteral("lag_steps"), QStringLiteral("lag_tokens"), QStringLiteral("autocorr"),
                 QStringLiteral("fit"), QStringLiteral("fitted_tau_steps"), QStringLiteral("fitted_tau_tokens")});
        for (int l = 0; l < levels; ++l) {
            const LevelTrace& level = model->levels[static_cast<size_t>(l)];
            for (size_t i = 0; i < level.autocorr.size() && i < level.autocorr_lag.size(); ++i) {
                const double lag = static_cast<double>(level.autocorr_lag[i]) * static_cast<double>(level.stride);
                const double fit = level.fitted_tau_tokens > 0 ? std::exp(-lag / level.fitted_tau_tokens) : kNaN;
                csv.row({QString::fromStdString(level.name), CsvWriter::number(level.autocorr_lag[i]), CsvWriter::number(lag),
                         CsvWriter::number(level.autocorr[i]), CsvWriter::number(fit), CsvWriter::number(level.fitted_tau_steps),
                         CsvWriter::number(level.fitted_tau_tokens)});
            }
        }
        csv.close();
        files << path;
    }
    {
        const QString path = basePath + QStringLiteral("_spectrum.csv");
        CsvWriter csv(path);
        csv.row({QStringLiteral("level"), QStringLiteral("frequency_per_token"), QStringLiteral("power")});
        for (int l = 0; l < levels; ++l) {
            const LevelTrace& level = model->levels[static_cast<size_t>(l)];
            for (size_t i = 0; i < level.spectrum_power.size() && i < level.spectrum_frequency.size(); ++i)
                csv.row({QString::fromStdString(level.name), CsvWriter::number(level.spectrum_frequency[i]),
                         CsvWriter::number(level.spectrum_power[i])});
        }
        csv.close();
        files << path;
    }
    return files;
}

}  // namespace harmonic::views

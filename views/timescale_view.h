// The timescale inspector of one model: per level, the distribution of learned timescales
// (channel tau, in tokens), the autocorrelation of the level's states against lag with the
// fitted exponential, and the power spectrum.
#pragma once

#include <QPointer>
#include <vector>

#include "views/derived.h"
#include "views/model_picker_view.h"
#include "views/plot_support.h"

namespace harmonic::views {

class TimescaleView : public ModelPickerView {
    Q_OBJECT
public:
    explicit TimescaleView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("timescales"); }
    QString title() const override { return tr("Timescales"); }
    double figureAspect(const FigurePreset& preset) const override;
    void renderFigure(QCPPainter* painter, const QSize& size) override;
    QStringList writeCsv(const QString& basePath, CsvRange range) const override;

    QCustomPlot* plot() const { return plot_; }
    QCPGraph* histogramGraph(int level) const;
    QCPGraph* autocorrGraph(int level) const;
    QCPGraph* fitGraph(int level) const;
    QCPGraph* spectrumGraph(int level) const;
    // Shared bin edges (tokens) of the tau histograms and each level's fraction per bin.
    const std::vector<double>& histogramEdges() const { return edges_; }
    std::vector<double> histogramFractions(int level) const;

protected:
    void onStyleChanged() override;
    void resizeEvent(QResizeEvent* event) override;

private:
    void rebuildPlot() override;

    QCustomPlot* plot_ = nullptr;
    bool stacked_ = false;  // panels in one column (narrow figures) instead of one row
    std::vector<double> edges_;
    std::vector<QPointer<QCPGraph>> histogram_;
    std::vector<QPointer<QCPGraph>> autocorr_;
    std::vector<QPointer<QCPGraph>> fit_;
    std::vector<QPointer<QCPGraph>> spectrum_;
};

}  // namespace harmonic::views

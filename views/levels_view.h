// Per-level hidden-state heatmaps (time x channel) of one model, each level drawn at its own
// rate and aligned to the tokens its rows cover, channels optionally sorted by learned
// timescale; and each level's prediction-error magnitude over time.
#pragma once

#include <QPointer>
#include <vector>

#include "views/model_picker_view.h"
#include "views/plot_support.h"

class QCheckBox;

namespace harmonic::views {

class LevelsView : public ModelPickerView {
    Q_OBJECT
public:
    explicit LevelsView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("levels"); }
    QString title() const override { return tr("Levels"); }
    double figureAspect(const FigurePreset& preset) const override;
    void renderFigure(QCPPainter* painter, const QSize& size) override;
    QStringList writeCsv(const QString& basePath, CsvRange range) const override;

    void setSortByTau(bool sort);
    bool sortByTau() const { return sortByTau_; }
    void setNormalize(bool normalize);  // z-score each channel over time
    bool normalize() const { return normalize_; }

    QCustomPlot* plot() const { return plot_; }
    QCPColorMap* colorMap(int level) const;
    QCPGraph* errorGraph(int level) const;
    // The displayed channel order of a level (index = row of the heatmap from the bottom).
    std::vector<int> channelOrder(int level) const;
    // The plotted value of heatmap row r, channel c (after normalisation).
    double displayValue(int level, int64_t row, int channel) const;

protected:
    void onStyleChanged() override;
    void onTokenAxisChanged(TokenAxis* axis) override;

private:
    void rebuildPlot() override;
    void refreshLod();
    void showTooltip(QMouseEvent* event);

    QCustomPlot* plot_ = nullptr;
    TokenPlotLink* link_ = nullptr;
    QCheckBox* sortBox_ = nullptr;
    QCheckBox* normalizeBox_ = nullptr;

    bool sortByTau_ = true;
    bool normalize_ = true;

    // Per level of the current model: channel statistics for normalisation.
    std::vector<std::vector<double>> channelMean_;
    std::vector<std::vector<double>> channelScale_;
    std::vector<QPointer<QCPColorMap>> maps_;
    std::vector<QPointer<QCPGraph>> errorGraphs_;
    std::vector<LodCurve> errorCurves_;
};

}  // namespace harmonic::views

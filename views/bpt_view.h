// Per-token bits per token of every model (raw and smoothed), the smoothed difference of two
// models, and the running mean by position in context (the long-context curve). All panels
// share the token axis.
#pragma once

#include <QPointer>
#include <vector>

#include "views/analysis_view.h"
#include "views/plot_support.h"

class QCheckBox;
class QComboBox;

namespace harmonic::views {

class BptView : public AnalysisView {
    Q_OBJECT
public:
    explicit BptView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("bpt"); }
    QString title() const override { return tr("Bits per token"); }
    double figureAspect(const FigurePreset& preset) const override;
    void renderFigure(QCPPainter* painter, const QSize& size) override;
    QStringList writeCsv(const QString& basePath, CsvRange range) const override;
    Preparer preparer() const override;

    // Options (also driven by the controls above the plot).
    void setSmoothingWindow(int tokens);  // 1 = off
    int smoothingWindow() const { return window_; }
    void setShowRaw(bool show);
    void setDifferenceModels(int a, int b);  // -1 hides the difference panel
    void setShowRunningMean(bool show);

    // For tests and callers that need the plotted objects.
    QCustomPlot* plot() const { return plot_; }
    QCPGraph* rawGraph(int model) const;
    QCPGraph* smoothedGraph(int model) const;
    QCPGraph* runningMeanGraph(int model) const;
    QCPGraph* differenceGraph() const { return diffGraph_; }
    // Full-resolution data behind the graphs (graphs may show a coarser level of detail).
    const LodCurve& rawCurve(int model) const { return raw_[static_cast<size_t>(model)]; }
    const LodCurve& smoothedCurve(int model) const { return smooth_[static_cast<size_t>(model)]; }
    const LodCurve& runningMeanCurve(int model) const { return running_[static_cast<size_t>(model)]; }
    const LodCurve& differenceCurve() const { return diff_; }

protected:
    void onResultChanged() override;
    void onStyleChanged() override;
    void onTokenRangeChanged(double lower, double upper) override;
    void onTokenAxisChanged(TokenAxis* axis) override;

private:
    void computeCurves();
    void computeSmoothed();
    void rebuildPlot();
    void refreshLod();
    void updateControls();
    void showTooltip(QMouseEvent* event);
    std::vector<float> differenceValues() const;

    QCustomPlot* plot_ = nullptr;
    TokenPlotLink* link_ = nullptr;
    QCheckBox* rawBox_ = nullptr;
    QCheckBox* runningBox_ = nullptr;
    QComboBox* windowBox_ = nullptr;
    QComboBox* diffABox_ = nullptr;
    QComboBox* diffBBox_ = nullptr;

    int window_ = 64;
    bool showRaw_ = false;  // several raw curves hide each other; the smoothed ones stay readable
    bool showRunning_ = true;
    int diffA_ = 0;
    int diffB_ = 1;

    std::vector<LodCurve> raw_;
    std::vector<LodCurve> smooth_;
    std::vector<LodCurve> running_;
    LodCurve diff_;

    std::vector<QPointer<QCPGraph>> rawGraphs_;
    std::vector<QPointer<QCPGraph>> smoothGraphs_;
    std::vector<QPointer<QCPGraph>> runningGraphs_;
    QPointer<QCPGraph> diffGraph_;
    QPointer<QCPTextElement> captionElement_;
    QList<QCPAxisRect*> rects_;
};

}  // namespace harmonic::views

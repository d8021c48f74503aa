// The summary: mean bpt of every model per position-in-context bucket (a bar chart) and a
// table with the overall numbers.
#pragma once

#include <memory>

#include "views/analysis_view.h"
#include "views/bar_chart.h"
#include "views/derived.h"

class QLabel;
class QTableWidget;

namespace harmonic::views {

class SummaryView : public AnalysisView {
    Q_OBJECT
public:
    explicit SummaryView(QWidget* parent = nullptr);
    ~SummaryView() override;

    QString viewId() const override { return QStringLiteral("summary"); }
    QString title() const override { return tr("Summary"); }
    double figureAspect(const FigurePreset& preset) const override;
    void renderFigure(QCPPainter* painter, const QSize& size) override;
    QStringList writeCsv(const QString& basePath, CsvRange range) const override;

    QTableWidget* table() const { return table_; }
    const BarChartData& chartData() const { return data_; }
    const std::vector<ContextBucket>& buckets() const { return buckets_; }

protected:
    void onResultChanged() override;
    void onStyleChanged() override;

private:
    std::unique_ptr<BarChart> chart_;
    QTableWidget* table_ = nullptr;
    QLabel* info_ = nullptr;
    BarChartData data_;
    std::vector<ContextBucket> buckets_;
};

}  // namespace harmonic::views

// The only file that includes Qt Charts (see bar_chart.h).
#include <QBarCategoryAxis>
#include <QBarSet>
#include <QBarSeries>
#include <QChart>
#include <QChartView>
#include <QGraphicsLayout>
#include <QGraphicsScene>
#include <QLegend>
#include <QValueAxis>
#include <cmath>

#include "views/bar_chart.h"

namespace harmonic::views {

namespace {

void buildChart(QChart* chart, const BarChartData& data, const FigureStyle& style) {
    chart->removeAllSeries();
    for (QAbstractAxis* axis : chart->axes()) {
        chart->removeAxis(axis);
        delete axis;
    }
    chart->setAnimationOptions(QChart::NoAnimation);
    chart->setBackgroundRoundness(0);
    chart->setBackgroundBrush(Qt::white);
    chart->setBackgroundPen(Qt::NoPen);
    chart->setDropShadowEnabled(false);
    const int m = style.paper ? 1 : 4;
    chart->setMargins(QMargins(m, m, m, m));
    chart->layout()->setContentsMargins(0, 0, 0, 0);

    auto* series = new QBarSeries;
    double top = 0.0;
    for (const BarSeries& s : data.series) {
        auto* set = new QBarSet(s.name);
        for (double v : s.values) {
            // Qt Charts has no gap value; 0 draws no visible bar.
            set->append(std::isfinite(v) ? v : 0.0);
            if (std::isfinite(v)) top = std::max(top, v);
        }
        set->setColor(s.color);
        set->setBorderColor(s.color.darker(140));
        QPen pen = set->pen();
        pen.setWidthF(style.thinLineWidth);
        set->setPen(pen);
        series->append(set);
    }
    series->setBarWidth(0.8);
    chart->addSeries(series);

    auto* categories = new QBarCategoryAxis;
    categories->append(data.categories);
    categories->setTitleText(data.categoryLabel);
    auto* values = new QValueAxis;
    values->setRange(0.0, top > 0 ? std::ceil(top * 1.1 * 2.0) / 2.0 : 1.0);
    values->setTitleText(data.valueLabel);
    values->setLabelFormat(QStringLiteral("%g"));
    values->setTickCount(5);
    values->applyNiceNumbers();
    values->setMin(0.0);
    categories->setTruncateLabels(false);
    for (QAbstractAxis* axis : std::initializer_list<QAbstractAxis*>{categories, values}) {
        axis->setLabelsFont(style.tickFont);
        axis->setTitleFont(style.labelFont);
        axis->setLabelsColor(Qt::black);
        axis->setTitleBrush(Qt::black);
        QPen line(Qt::black, style.axisLineWidth);
        axis->setLinePen(line);
        axis->setGridLinePen(QPen(QColor(0, 0, 0, 28), style.thinLineWidth));
    }
    categories->setGridLineVisible(false);
    chart->addAxis(categories, Qt::AlignBottom);
    chart->addAxis(values, Qt::AlignLeft);
    series->attachAxis(categories);
    series->attachAxis(values);

    chart->legend()->setVisible(true);
    chart->legend()->setAlignment(Qt::AlignTop);
    chart->legend()->setFont(style.legendFont);
    chart->legend()->setLabelColor(Qt::black);
    chart->legend()->setMarkerShape(QLegend::MarkerShapeRectangle);
}

class QtChartsBarChart : public BarChart {
public:
    explicit QtChartsBarChart(QWidget* parent) {
        chart_ = new QChart;
        view_ = new QChartView(chart_, parent);
        view_->setRenderHint(QPainter::Antialiasing);
        view_->setMinimumHeight(110);  // the summary table below needs the rest on a small screen
    }
    QWidget* widget() override { return view_; }
    void setData(const BarChartData& data) override {
        data_ = data;
        buildChart(chart_, data_, style_);
    }
    void setStyle(const FigureStyle& style) override {
        style_ = style;
        buildChart(chart_, data_, style_);
    }
    void render(QPainter* painter, const QRectF& target) override {
        // A separate chart at the target size, so an export never disturbs the widget.
        QGraphicsScene scene;
        auto* chart = new QChart;
        scene.addItem(chart);
        buildChart(chart, data_, style_);
        chart->setGeometry(QRectF(QPointF(0, 0), target.size()));
        chart->layout()->activate();
        scene.setSceneRect(QRectF(QPointF(0, 0), target.size()));
        painter->save();
        painter->setRenderHint(QPainter::Antialiasing);
        scene.render(painter, target, scene.sceneRect(), Qt::IgnoreAspectRatio);
        painter->restore();
    }

private:
    QChart* chart_ = nullptr;
    QChartView* view_ = nullptr;
    BarChartData data_;
    FigureStyle style_ = screenStyle();
};

}  // namespace

std::unique_ptr<BarChart> createBarChart(QWidget* parent) { return std::make_unique<QtChartsBarChart>(parent); }

}  // namespace harmonic::views

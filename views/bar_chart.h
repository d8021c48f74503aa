// A grouped bar chart behind our own small interface. The one implementation uses Qt Charts,
// which is deprecated from Qt 6.10 on; moving to Qt Graphs (or QCustomPlot bars) replaces
// bar_chart_qtcharts.cpp and touches nothing else.
#pragma once

#include <QColor>
#include <QRectF>
#include <QStringList>
#include <QVector>
#include <memory>

#include "views/figure_style.h"

class QPainter;
class QWidget;

namespace harmonic::views {

struct BarSeries {
    QString name;
    QColor color;
    QVector<double> values;  // one per category; NaN = no bar
};

struct BarChartData {
    QStringList categories;
    QVector<BarSeries> series;
    QString categoryLabel;
    QString valueLabel;
};

class BarChart {
public:
    virtual ~BarChart() = default;
    virtual QWidget* widget() = 0;
    virtual void setData(const BarChartData& data) = 0;
    virtual void setStyle(const FigureStyle& style) = 0;
    // Draws the chart into target (painter units, e.g. points), independent of the widget size.
    virtual void render(QPainter* painter, const QRectF& target) = 0;
};

std::unique_ptr<BarChart> createBarChart(QWidget* parent);

}  // namespace harmonic::views

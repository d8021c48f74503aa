#include "views/summary_view.h"

#include <QHeaderView>
#include <QLabel>
#include <QLocale>
#include <QScrollBar>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
#include <cmath>
#include <qcustomplot.h>

#include "views/csv.h"
#include "views/palette.h"

namespace harmonic::views {

SummaryView::SummaryView(QWidget* parent) : AnalysisView(parent) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    auto* splitter = new QSplitter(Qt::Vertical, this);
    chart_ = createBarChart(splitter);
    splitter->addWidget(chart_->widget());
    auto* lower = new QWidget(splitter);
    auto* lowerLayout = new QVBoxLayout(lower);
    lowerLayout->setContentsMargins(4, 0, 4, 4);
    info_ = new QLabel(lower);
    info_->setWordWrap(true);
    info_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    table_ = new QTableWidget(lower);
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table_->setSelectionBehavior(QAbstractItemView::SelectRows);
    table_->verticalHeader()->setVisible(false);
    table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    lowerLayout->addWidget(info_);
    lowerLayout->addWidget(table_, 1);
    splitter->addWidget(lower);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    layout->addWidget(splitter);
    onStyleChanged();
    onResultChanged();
}

SummaryView::~SummaryView() = default;

void SummaryView::onStyleChanged() { chart_->setStyle(figureStyle()); }

void SummaryView::onResultChanged() {
    const AnalysisResult* r = result().get();
    buckets_ = contextBuckets(r ? r->token_count() : 0);
    data_ = BarChartData();
    data_.categoryLabel = tr("position in context (tokens)");
    data_.valueLabel = tr("mean bpt");  // short: the axis is only as tall as the summary dock
    for (const auto& b : buckets_) data_.categories << b.label;
    const int models = r ? static_cast<int>(r->models.size()) : 0;
    const auto colors = r ? modelColors(*r) : QVector<QColor>();
    for (int m = 0; m < models; ++m) {
        BarSeries s;
        s.name = modelName(*r, m);
        s.color = colors[m];
        for (const auto& b : buckets_) s.values << finiteMean(r->models[static_cast<size_t>(m)].bpt, b.begin, b.end);
        data_.series << s;
    }
    chart_->setData(data_);

    QStringList headers{tr("Model"), tr("Family"), tr("Parameters"), tr("Mean bpt")};
    for (const auto& b : buckets_) headers << b.label;
    table_->clear();
    table_->setColumnCount(static_cast<int>(headers.size()));
    table_->setHorizontalHeaderLabels(headers);
    table_->setRowCount(models);
    const QLocale locale;
    for (int m = 0; m < models; ++m) {
        const ModelTrace& model = r->models[static_cast<size_t>(m)];
        auto item = [](const QString& text, bool number) {
            auto* it = new QTableWidgetItem(text);
            if (number) it->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            return it;
        };
        auto* name = item(modelName(*r, m), false);
        name->setIcon([&] {
            QPixmap swatch(12, 12);
            swatch.fill(colors[m]);
            return QIcon(swatch);
        }());
        name->setToolTip(QString::fromStdString(model.checkpoint));
        table_->setItem(m, 0, name);
        table_->setItem(m, 1, item(QString::fromStdString(model.family), false));
        table_->setItem(m, 2, item(model.parameters > 0 ? locale.toString(static_cast<qlonglong>(model.parameters)) : QStringLiteral("–"), true));
        const double mean = finiteMean(model.bpt, 0, static_cast<int64_t>(model.bpt.size()));
        table_->setItem(m, 3, item(std::isnan(mean) ? QStringLiteral("–") : QString::number(mean, 'f', 3), true));
        for (int b = 0; b < static_cast<int>(buckets_.size()); ++b) {
            const double v = data_.series[m].values[b];
            table_->setItem(m, 4 + b, item(std::isnan(v) ? QStringLiteral("–") : QString::number(v, 'f', 3), true));
        }
    }
    if (r) {
        QStringList parts{tr("<b>%1</b>: %2 tokens (%3 tokenizer)")
                              .arg(QString::fromStdString(r->text_name).toHtmlEscaped(), locale.toString(static_cast<qlonglong>(r->token_count())),
                                   QString::fromStdString(r->tokenizer)),
                          tr("device %1, %2, %3 s").arg(QString::fromStdString(r->device), QString::fromStdString(r->precision))
                              .arg(r->seconds, 0, 'f', 2)};
        for (const auto& note : r->notes) parts << QString::fromStdString(note).toHtmlEscaped();
        info_->setText(parts.join(QStringLiteral(" · ")));
    } else {
        info_->setText(tr("No analysis yet."));
    }
    // Tall enough for every model's row (and the scroll bar a wide table gets), so no row is hidden.
    table_->resizeRowsToContents();
    int height = table_->horizontalHeader()->sizeHint().height() + 2 * table_->frameWidth() +
                 table_->horizontalScrollBar()->sizeHint().height();
    for (int row = 0; row < table_->rowCount(); ++row) height += table_->rowHeight(row);
    table_->setMinimumHeight(height);
}

double SummaryView::figureAspect(const FigurePreset& preset) const { return preset.widthInches < 5 ? 0.75 : 0.4; }

void SummaryView::renderFigure(QCPPainter* painter, const QSize& size) {
    painter->fillRect(QRect(QPoint(0, 0), size), Qt::white);
    chart_->render(painter, QRectF(QPointF(0, 0), QSizeF(size)));
}

QStringList SummaryView::writeCsv(const QString& basePath, CsvRange) const {
    // Means over the whole text: the buckets are positions in context, not a visible range.
    const QString path = basePath + QStringLiteral(".csv");
    CsvWriter csv(path);
    QStringList header{QStringLiteral("model"), QStringLiteral("family"), QStringLiteral("checkpoint"), QStringLiteral("parameters"),
                       QStringLiteral("tokens"), QStringLiteral("mean_bpt")};
    for (const auto& b : buckets_) header << QStringLiteral("mean_bpt_pos_%1_%2").arg(b.begin).arg(b.end - 1);
    csv.row(header);
    const AnalysisResult* r = result().get();
    for (int m = 0; r && m < static_cast<int>(r->models.size()); ++m) {
        const ModelTrace& model = r->models[static_cast<size_t>(m)];
        QStringList row{modelName(*r, m), QString::fromStdString(model.family), QString::fromStdString(model.checkpoint),
                        QString::number(model.parameters), QString::number(r->token_count()),
                        CsvWriter::number(finiteMean(model.bpt, 0, static_cast<int64_t>(model.bpt.size())))};
        for (double v : data_.series[m].values) row << CsvWriter::number(v);
        csv.row(row);
    }
    csv.close();
    return {path};
}

}  // namespace harmonic::views

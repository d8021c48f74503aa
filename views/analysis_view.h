// The base of every view: holds the shared result and the shared token axis, and knows how to
// draw itself as a figure and write the data behind that figure as CSV.
#pragma once

#include <QPointer>
#include <QSize>
#include <QStringList>
#include <QWidget>
#include <functional>
#include <memory>
#include <utility>

#include "model/analysis_result.h"
#include "views/figure_style.h"
#include "views/token_axis.h"

class QCPPainter;

namespace harmonic::views {

// Data a view derives from a result before it can draw it (smoothed curves, decoded text).
// Computing it needs no widget, so the app runs it on the analysis thread: the UI thread
// then only installs it.
using PreparedData = std::shared_ptr<const void>;
using Preparer = std::function<PreparedData(const AnalysisResult&)>;

class AnalysisView : public QWidget {
    Q_OBJECT
public:
    explicit AnalysisView(QWidget* parent = nullptr);

    // Short id used in file names ("bpt", "levels").
    virtual QString viewId() const = 0;
    virtual QString title() const = 0;
    // File stem of this view's figure; views showing one model add the model's name.
    virtual QString fileStem() const { return viewId(); }

    // prepared: what this view's preparer() made of the same result (optional).
    void setResult(std::shared_ptr<const AnalysisResult> result, PreparedData prepared = {});
    // A job that may run on any thread, capturing the view's current options by value; empty
    // when the view has nothing heavy to derive.
    virtual Preparer preparer() const { return {}; }
    const std::shared_ptr<const AnalysisResult>& result() const { return result_; }

    // Every view starts with a private axis; the app hands all views the same one.
    void setTokenAxis(TokenAxis* axis);
    TokenAxis* tokenAxis() const { return axis_; }

    void setFigureStyle(const FigureStyle& style);
    const FigureStyle& figureStyle() const { return style_; }

    // Height / width of this view's figure for a preset.
    virtual double figureAspect(const FigurePreset& preset) const;
    // Draws the figure (the current style, current options and range) into size, in painter
    // units (points for PDF/SVG). The painter is active and may be scaled.
    virtual void renderFigure(QCPPainter* painter, const QSize& size) = 0;
    // Writes the numbers behind the figure; returns the files written (basePath + ".csv" or
    // basePath + "_part.csv"). Throws std::runtime_error on I/O failure.
    virtual QStringList writeCsv(const QString& basePath, CsvRange range) const = 0;

    // Tokens [begin, end) covered by a CSV in the given mode.
    std::pair<qint64, qint64> csvTokenSpan(CsvRange range) const;

signals:
    // Options changed (model chosen, window, sorting): the figure would look different now.
    void optionsChanged();

protected:
    // In onResultChanged: what the preparer made for this result, or null.
    const PreparedData& preparedData() const { return prepared_; }
    virtual void onResultChanged() = 0;
    virtual void onStyleChanged() = 0;
    virtual void onTokenAxisChanged(TokenAxis* axis) { Q_UNUSED(axis); }
    virtual void onTokenRangeChanged(double lower, double upper) {
        Q_UNUSED(lower);
        Q_UNUSED(upper);
    }
    virtual void onTokenSelectionChanged(qint64 begin, qint64 end) {
        Q_UNUSED(begin);
        Q_UNUSED(end);
    }

private:
    std::shared_ptr<const AnalysisResult> result_;
    PreparedData prepared_;
    QPointer<TokenAxis> axis_;
    QPointer<TokenAxis> ownAxis_;
    FigureStyle style_;
    QMetaObject::Connection rangeConnection_;
    QMetaObject::Connection selectionConnection_;
};

// Display name of a model, unique within the result.
QString modelName(const AnalysisResult& result, int modelIndex);
// File-name-safe version of a name.
QString safeFileName(const QString& name);

}  // namespace harmonic::views

#include "views/analysis_view.h"

#include <QRegularExpression>

namespace harmonic::views {

AnalysisView::AnalysisView(QWidget* parent) : QWidget(parent), style_(screenStyle()) {
    ownAxis_ = new TokenAxis(this);
    setTokenAxis(ownAxis_);
}

void AnalysisView::setResult(std::shared_ptr<const AnalysisResult> result, PreparedData prepared) {
    result_ = std::move(result);
    prepared_ = std::move(prepared);
    if (result_ && axis_ && axis_->tokenCount() != result_->token_count()) axis_->setTokenCount(result_->token_count());
    onResultChanged();
    prepared_.reset();  // installed (or stale): never reused for a later result
}

void AnalysisView::setTokenAxis(TokenAxis* axis) {
    if (!axis || axis == axis_) return;
    disconnect(rangeConnection_);
    disconnect(selectionConnection_);
    axis_ = axis;
    rangeConnection_ = connect(axis, &TokenAxis::rangeChanged, this, &AnalysisView::onTokenRangeChanged);
    selectionConnection_ = connect(axis, &TokenAxis::selectionChanged, this, &AnalysisView::onTokenSelectionChanged);
    if (axis != ownAxis_ && ownAxis_) {
        ownAxis_->deleteLater();
        ownAxis_ = nullptr;
    }
    if (result_ && axis_->tokenCount() != result_->token_count()) axis_->setTokenCount(result_->token_count());
    onTokenAxisChanged(axis_);
    onTokenRangeChanged(axis_->lower(), axis_->upper());
    onTokenSelectionChanged(axis_->selectionBegin(), axis_->selectionEnd());
}

void AnalysisView::setFigureStyle(const FigureStyle& style) {
    style_ = style;
    onStyleChanged();
}

double AnalysisView::figureAspect(const FigurePreset& preset) const { return preset.widthInches < 5 ? 0.75 : 0.45; }

std::pair<qint64, qint64> AnalysisView::csvTokenSpan(CsvRange range) const {
    const qint64 n = result_ ? result_->token_count() : 0;
    if (range == CsvRange::All || !axis_) return {0, n};
    return {std::min(axis_->firstVisibleToken(), n), std::min(axis_->endVisibleToken(), n)};
}

QString modelName(const AnalysisResult& result, int modelIndex) {
    if (modelIndex < 0 || modelIndex >= static_cast<int>(result.models.size())) return {};
    const auto& m = result.models[static_cast<size_t>(modelIndex)];
    QString name = QString::fromStdString(m.name);
    if (name.isEmpty()) name = QString::fromStdString(m.family);
    if (name.isEmpty()) name = QStringLiteral("model %1").arg(modelIndex + 1);
    return name;
}

QString safeFileName(const QString& name) {
    static const QRegularExpression bad(QStringLiteral("[^A-Za-z0-9._-]+"));
    QString s = name;
    s.replace(bad, QStringLiteral("_"));
    if (s.isEmpty()) s = QStringLiteral("model");
    return s;
}

}  // namespace harmonic::views

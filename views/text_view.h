// The text itself, each token on a background coloured by its bpt under one model, or by the
// bpt difference of two models (diverging map). Hover shows the token's bpt under every model
// and what each model expected there (its top-k predictions); dragging selects tokens on the
// shared axis. Handles a million tokens: only visible lines are drawn.
#pragma once

#include <QAbstractScrollArea>
#include <QFont>
#include <functional>
#include <vector>

#include "views/analysis_view.h"
#include "views/palette.h"

class QComboBox;
class QLabel;

namespace harmonic::views {

class TokenCanvas;

// What each token shows on screen: its characters (control characters made visible, a
// multi-byte character split over byte tokens shown once, on the token where it starts) and
// how many line breaks follow it.
struct TokenDisplay {
    QString text;
    std::vector<int32_t> offsets;  // token i is text[offsets[i], offsets[i + 1])
    std::vector<uint8_t> breaks;   // line breaks after token i
    qint64 size() const { return static_cast<qint64>(breaks.size()); }
    QStringView token(qint64 i) const {
        return QStringView(text).mid(offsets[static_cast<size_t>(i)], offsets[static_cast<size_t>(i) + 1] - offsets[static_cast<size_t>(i)]);
    }
    static TokenDisplay fromResult(const AnalysisResult& result);
};

// Tokens laid out into lines (word wrap at token boundaries).
struct TextLayout {
    qint64 first = 0;                // layout covers tokens [first, end)
    qint64 end = 0;
    std::vector<float> x;            // per token in [first, end)
    std::vector<float> width;
    std::vector<int32_t> line;
    std::vector<qint64> lineStart;   // first token of each line; lines may be empty
    qreal lineHeight = 1;
    qreal ascent = 1;
    int lineCount() const { return static_cast<int>(lineStart.size()); }
    static TextLayout build(const TokenDisplay& display, const QFont& font, qreal width, qint64 first, qint64 end,
                            int maxLines = -1);
};

class TextView : public AnalysisView {
    Q_OBJECT
public:
    enum class ColorMode { Bpt, Difference };

    explicit TextView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("text"); }
    QString title() const override { return tr("Text"); }
    double figureAspect(const FigurePreset& preset) const override;
    void renderFigure(QCPPainter* painter, const QSize& size) override;
    QStringList writeCsv(const QString& basePath, CsvRange range) const override;
    Preparer preparer() const override;

    void setColorByBpt(int model);
    void setColorByDifference(int modelA, int modelB);
    ColorMode colorMode() const { return mode_; }
    int modelA() const { return modelA_; }
    int modelB() const { return modelB_; }

    // How predicted token ids are shown. Without it: bytes for the byte tokenizer, else the
    // text of the same id where it occurs in this text, else "#id".
    void setTokenTextFunction(std::function<QString(int32_t)> fn);
    QString tokenIdText(int32_t id) const;

    // The value a token is coloured by (bpt or difference; NaN for token 0) and its colour.
    double colorValue(qint64 token) const;
    QColor tokenColor(qint64 token) const;
    double colorScaleMax() const { return scaleMax_; }
    QString colorScaleLabel() const;
    QString tooltipHtml(qint64 token) const;

    // For tests: the token under a viewport point, and the first token in view.
    qint64 tokenAt(const QPoint& viewportPos) const;
    qint64 firstShownToken() const;
    QWidget* canvas() const;

protected:
    void onResultChanged() override;
    void onStyleChanged() override;
    void onTokenRangeChanged(double lower, double upper) override;
    void onTokenSelectionChanged(qint64 begin, qint64 end) override;

private:
    friend class TokenCanvas;
    void updateControls();
    void updateScale();
    void applyControls();
    void drawLegend(QPainter* p, const QRectF& rect, const QFont& font) const;
    void drawTokens(QPainter* p, const TextLayout& layout, const QFont& font, int firstLine, int lastLine, qreal top,
                    qreal left, qint64 hovered) const;

    TokenCanvas* canvas_ = nullptr;
    QComboBox* modeBox_ = nullptr;
    QComboBox* aBox_ = nullptr;
    QComboBox* bBox_ = nullptr;
    QWidget* legend_ = nullptr;

    ColorMode mode_ = ColorMode::Bpt;
    int modelA_ = 0;
    int modelB_ = 1;
    double scaleMax_ = 1.0;
    TokenDisplay display_;
    std::function<QString(int32_t)> tokenTextFn_;
    std::vector<QString> idText_;  // fallback id -> text from this text's own tokens
};

}  // namespace harmonic::views

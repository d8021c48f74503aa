#include "views/text_view.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QHash>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QScrollBar>
#include <QTimer>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <limits>
#include <qcustomplot.h>

#include "model/utf8.h"
#include "views/csv.h"
#include "views/derived.h"

namespace harmonic::views {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr qreal kPad = 6.0;

bool startsWithSpace(QStringView s) { return !s.isEmpty() && s.front().isSpace(); }
bool endsWithSpace(QStringView s) { return !s.isEmpty() && s.back().isSpace(); }
}  // namespace

// --- TokenDisplay / TextLayout -------------------------------------------------------------

TokenDisplay TokenDisplay::fromResult(const AnalysisResult& result) {
    TokenDisplay d;
    const size_t n = result.token_text.size();
    std::string all;
    std::vector<size_t> start(n + 1, 0);
    for (size_t i = 0; i < n; ++i) {
        start[i] = all.size();
        all += result.token_text[i];
    }
    start[n] = all.size();
    d.offsets.assign(n + 1, 0);
    d.breaks.assign(n, 0);
    d.text.reserve(static_cast<qsizetype>(all.size()));
    size_t owner = 0;
    size_t p = 0;
    for (size_t t = 0; t < n; ++t) {
        d.offsets[t] = static_cast<int32_t>(d.text.size());
        // Characters that start inside token t belong to it, even when they end in a later one.
        while (p < start[t + 1]) {
            owner = t;
            char32_t cp = 0;
            p += utf8::decode_or_replacement(all, p, cp);  // an invalid byte shows as U+FFFD
            if (cp == '\n') {
                if (d.breaks[owner] < 255) ++d.breaks[owner];
            } else if (cp == '\r') {
                // Shown by the line break that follows it.
            } else if (cp == '\t') {
                d.text += QLatin1String("    ");
            } else if (cp < 0x20) {
                d.text += QChar(static_cast<char16_t>(0x2400 + cp));  // control pictures block
            } else if (cp == 0x7F) {
                d.text += QChar(static_cast<char16_t>(0x2421));
            } else {
                const char32_t c[1] = {cp};
                d.text += QString::fromUcs4(c, 1);
            }
        }
    }
    d.offsets[n] = static_cast<int32_t>(d.text.size());
    return d;
}

TextLayout TextLayout::build(const TokenDisplay& display, const QFont& font, qreal width, qint64 first, qint64 end,
                             int maxLines) {
    TextLayout layout;
    first = std::clamp<qint64>(first, 0, display.size());
    end = std::clamp<qint64>(end, first, display.size());
    layout.first = first;
    const QFontMetricsF fm(font);
    layout.lineHeight = fm.height() + 3.0;
    layout.ascent = fm.ascent();
    const qreal breakWidth = fm.horizontalAdvance(QLatin1Char(' ')) * 0.6;
    width = std::max<qreal>(width, 40.0);

    QHash<char16_t, float> charWidth;
    QHash<QString, float> stringWidth;
    auto measure = [&](QStringView s) -> float {
        if (s.size() == 1) {
            const char16_t c = s.front().unicode();
            auto it = charWidth.constFind(c);
            if (it != charWidth.constEnd()) return *it;
            const auto w = static_cast<float>(fm.horizontalAdvance(s.front()));
            charWidth.insert(c, w);
            return w;
        }
        const QString key = s.toString();
        auto it = stringWidth.constFind(key);
        if (it != stringWidth.constEnd()) return *it;
        const auto w = static_cast<float>(fm.horizontalAdvance(key));
        stringWidth.insert(key, w);
        return w;
    };

    const auto reserve = static_cast<size_t>(end - first);
    layout.x.reserve(reserve);
    layout.width.reserve(reserve);
    layout.line.reserve(reserve);
    layout.lineStart.push_back(first);
    qreal x = 0;
    qint64 wordStart = first;
    bool full = false;
    auto newLine = [&](qint64 startToken) {
        if (maxLines > 0 && static_cast<int>(layout.lineStart.size()) >= maxLines) {
            full = true;
            return;
        }
        layout.lineStart.push_back(startToken);
    };
    qint64 i = first;
    for (; i < end && !full; ++i) {
        const QStringView s = display.token(i);
        float w = s.isEmpty() ? 0.0F : measure(s);
        const uint8_t breaks = display.breaks[static_cast<size_t>(i)];
        if (s.isEmpty() && breaks > 0) w = static_cast<float>(breakWidth);
        const qint64 lineFirst = layout.lineStart.back();
        if (x + w > width && i > lineFirst) {
            if (!startsWithSpace(s) && wordStart > lineFirst && wordStart < i) {
                // Carry the unfinished word to the next line.
                newLine(wordStart);
                if (full) break;
                x = 0;
                for (qint64 k = wordStart; k < i; ++k) {
                    const auto idx = static_cast<size_t>(k - first);
                    layout.x[idx] = static_cast<float>(x);
                    layout.line[idx] = static_cast<int32_t>(layout.lineStart.size() - 1);
                    x += layout.width[idx];
                }
            } else {
                newLine(i);
                if (full) break;
                x = 0;
            }
        }
        if (startsWithSpace(s)) wordStart = i;
        layout.x.push_back(static_cast<float>(x));
        layout.width.push_back(w);
        layout.line.push_back(static_cast<int32_t>(layout.lineStart.size() - 1));
        x += w;
        if (endsWithSpace(s)) wordStart = i + 1;
        for (int b = 0; b < breaks && !full; ++b) newLine(i + 1);
        if (breaks > 0) {
            x = 0;
            wordStart = i + 1;
        }
    }
    layout.end = first + static_cast<qint64>(layout.x.size());
    // A trailing line break leaves an empty last line; drop lines that start past the end.
    while (layout.lineStart.size() > 1 && layout.lineStart.back() >= layout.end && layout.end == display.size() &&
           layout.lineStart[layout.lineStart.size() - 2] >= layout.end)
        layout.lineStart.pop_back();
    return layout;
}

// --- the scrolling canvas ------------------------------------------------------------------

class TokenCanvas : public QAbstractScrollArea {
public:
    explicit TokenCanvas(TextView* view) : QAbstractScrollArea(view), view_(view) {
        viewport()->setMouseTracking(true);
        viewport()->setBackgroundRole(QPalette::Base);
        relayoutTimer_.setSingleShot(true);
        relayoutTimer_.setInterval(120);
        connect(&relayoutTimer_, &QTimer::timeout, this, [this] {
            const qint64 top = firstShownToken();
            relayout();
            scrollToToken(top, false);
        });
        setFrameShape(QFrame::NoFrame);
        verticalScrollBar()->setSingleStep(1);
    }

    void setTextFont(const QFont& font) {
        font_ = font;
        relayout();
    }
    const QFont& textFont() const { return font_; }

    void relayout() {
        layoutWidth_ = viewport()->width();
        layout_ = TextLayout::build(view_->display_, font_, layoutWidth_ - 2 * kPad, 0, view_->display_.size());
        updateScrollBar();
        viewport()->update();
    }

    qreal pitch() const { return layout_.lineHeight; }
    int visibleLines() const { return std::max(1, static_cast<int>(viewport()->height() / pitch())); }

    void updateScrollBar() {
        verticalScrollBar()->setPageStep(visibleLines());
        verticalScrollBar()->setRange(0, std::max(0, layout_.lineCount() - visibleLines()));
    }

    int lineOf(qint64 token) const {
        if (token < layout_.first || token >= layout_.end) return -1;
        return layout_.line[static_cast<size_t>(token - layout_.first)];
    }

    void scrollToToken(qint64 token, bool onlyIfHidden) {
        const int line = lineOf(token);
        if (line < 0) return;
        const int top = verticalScrollBar()->value();
        if (onlyIfHidden && line >= top && line < top + visibleLines()) return;
        verticalScrollBar()->setValue(line);
    }

    qint64 firstShownToken() const {
        const int line = verticalScrollBar()->value();
        if (line < 0 || line >= layout_.lineCount()) return 0;
        return layout_.lineStart[static_cast<size_t>(line)];
    }

    qint64 tokenAt(const QPoint& pos) const {
        const int line = verticalScrollBar()->value() + static_cast<int>(std::floor(pos.y() / pitch()));
        if (line < 0 || line >= layout_.lineCount()) return -1;
        const qint64 a = layout_.lineStart[static_cast<size_t>(line)];
        const qint64 b = line + 1 < layout_.lineCount() ? layout_.lineStart[static_cast<size_t>(line) + 1] : layout_.end;
        const qreal x = pos.x() - kPad;
        for (qint64 t = a; t < b; ++t) {
            const auto i = static_cast<size_t>(t - layout_.first);
            if (layout_.line[i] != line) continue;
            if (x >= layout_.x[i] && x < layout_.x[i] + layout_.width[i]) return t;
        }
        return -1;
    }

protected:
    void paintEvent(QPaintEvent*) override {
        QPainter p(viewport());
        p.fillRect(viewport()->rect(), Qt::white);
        const int first = verticalScrollBar()->value();
        view_->drawTokens(&p, layout_, font_, first, first + visibleLines() + 1, 0.0, kPad, hovered_);
    }

    void resizeEvent(QResizeEvent* event) override {
        QAbstractScrollArea::resizeEvent(event);
        if (viewport()->width() != layoutWidth_) {
            // Re-wrapping a million tokens takes tens of milliseconds: during a window drag,
            // wait until the size settles.
            if (view_->display_.size() > 200'000) {
                relayoutTimer_.start();
                return;
            }
            // Keep the token at the top in view across the re-wrap.
            const qint64 top = firstShownToken();
            relayout();
            scrollToToken(top, false);
        } else {
            updateScrollBar();
        }
    }

    void scrollContentsBy(int, int) override { viewport()->update(); }

    void mousePressEvent(QMouseEvent* event) override {
        const qint64 t = tokenAt(event->position().toPoint());
        if (event->button() != Qt::LeftButton) return;
        if (t < 0) {
            view_->tokenAxis()->clearSelection();
            return;
        }
        if ((event->modifiers() & Qt::ShiftModifier) && view_->tokenAxis()->hasSelection())
            anchor_ = view_->tokenAxis()->selectionBegin();
        else
            anchor_ = t;
        selecting_ = true;
        view_->tokenAxis()->setSelection(std::min(anchor_, t), std::max(anchor_, t) + 1);
    }

    void mouseMoveEvent(QMouseEvent* event) override {
        const qint64 t = tokenAt(event->position().toPoint());
        if (selecting_ && t >= 0) {
            view_->tokenAxis()->setSelection(std::min(anchor_, t), std::max(anchor_, t) + 1);
        }
        if (t != hovered_) {
            hovered_ = t;
            viewport()->update();
            if (t >= 0 && !selecting_)
                QToolTip::showText(event->globalPosition().toPoint(), view_->tooltipHtml(t), viewport());
            else
                QToolTip::hideText();
        }
    }

    void mouseReleaseEvent(QMouseEvent*) override {
        if (!selecting_) return;
        selecting_ = false;
        // Bring the plots to the selection when it is out of their view (a million-token axis
        // would show it as a hairline otherwise).
        TokenAxis* axis = view_->tokenAxis();
        if (!axis->hasSelection()) return;
        const double width = axis->upper() - axis->lower();
        const double a = axis->selectionBegin() - 0.5;
        const double b = axis->selectionEnd() - 0.5;
        if (a < axis->lower() || b > axis->upper() || width > 200.0 * (b - a)) {
            const double w = std::min(width, std::max(200.0, 20.0 * (b - a)));
            const double centre = 0.5 * (a + b);
            suppressScroll_ = true;
            axis->setRange(centre - 0.5 * w, centre + 0.5 * w);
            suppressScroll_ = false;
        }
    }

    void mouseDoubleClickEvent(QMouseEvent* event) override {
        const qint64 t = tokenAt(event->position().toPoint());
        if (t >= 0) view_->tokenAxis()->setSelection(t, t + 1);
    }

    void leaveEvent(QEvent*) override {
        hovered_ = -1;
        viewport()->update();
    }

public:
    bool suppressScroll_ = false;

private:
    TextView* view_;
    QFont font_;
    TextLayout layout_;
    QTimer relayoutTimer_;
    int layoutWidth_ = -1;
    qint64 hovered_ = -1;
    qint64 anchor_ = 0;
    bool selecting_ = false;
};

namespace {
class LegendBar : public QWidget {
public:
    LegendBar(TextView* view, std::function<void(QPainter*, const QRectF&)> draw) : QWidget(view), draw_(std::move(draw)) {
        setMinimumHeight(QFontMetrics(font()).height() * 2 + 6);
    }

protected:
    void paintEvent(QPaintEvent*) override {
        QPainter p(this);
        p.setRenderHint(QPainter::Antialiasing);
        draw_(&p, QRectF(rect()).adjusted(kPad, 2, -kPad, -2));
    }

private:
    std::function<void(QPainter*, const QRectF&)> draw_;
};
}  // namespace

// --- TextView ------------------------------------------------------------------------------

TextView::TextView(QWidget* parent) : AnalysisView(parent) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(2);
    auto* controls = new QHBoxLayout;
    controls->setContentsMargins(4, 2, 4, 0);
    modeBox_ = new QComboBox(this);
    modeBox_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    modeBox_->addItem(tr("bpt of"), static_cast<int>(ColorMode::Bpt));
    modeBox_->addItem(tr("difference"), static_cast<int>(ColorMode::Difference));
    modeBox_->setToolTip(tr("Colour tokens by one model's bits per token, or by the difference of two models"));
    aBox_ = new QComboBox(this);
    aBox_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    bBox_ = new QComboBox(this);
    bBox_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    controls->addWidget(new QLabel(tr("Colour by"), this));
    controls->addWidget(modeBox_);
    controls->addWidget(aBox_);
    controls->addWidget(new QLabel(QStringLiteral("−"), this));
    controls->addWidget(bBox_);
    controls->addStretch(1);
    layout->addLayout(controls);
    legend_ = new LegendBar(this, [this](QPainter* p, const QRectF& r) { drawLegend(p, r, font()); });
    layout->addWidget(legend_);
    canvas_ = new TokenCanvas(this);
    layout->addWidget(canvas_, 1);
    connect(modeBox_, &QComboBox::activated, this, &TextView::applyControls);
    connect(aBox_, &QComboBox::activated, this, &TextView::applyControls);
    connect(bBox_, &QComboBox::activated, this, &TextView::applyControls);
    onStyleChanged();
    updateControls();
}

QWidget* TextView::canvas() const { return canvas_->viewport(); }
qint64 TextView::tokenAt(const QPoint& viewportPos) const { return canvas_->tokenAt(viewportPos); }
qint64 TextView::firstShownToken() const { return canvas_->firstShownToken(); }

void TextView::setTokenTextFunction(std::function<QString(int32_t)> fn) { tokenTextFn_ = std::move(fn); }

QString TextView::tokenIdText(int32_t id) const {
    if (tokenTextFn_) return tokenTextFn_(id);
    if (result() && result()->tokenizer == "bytes" && id >= 0 && id < 256)
        return printableToken(std::string(1, static_cast<char>(id)));
    if (id >= 0 && static_cast<size_t>(id) < idText_.size() && !idText_[static_cast<size_t>(id)].isNull())
        return idText_[static_cast<size_t>(id)];
    return QStringLiteral("#%1").arg(id);
}

void TextView::setColorByBpt(int model) {
    mode_ = ColorMode::Bpt;
    modelA_ = model;
    updateControls();
    updateScale();
    emit optionsChanged();
}

void TextView::setColorByDifference(int modelA, int modelB) {
    mode_ = ColorMode::Difference;
    modelA_ = modelA;
    modelB_ = modelB;
    updateControls();
    updateScale();
    emit optionsChanged();
}

void TextView::applyControls() {
    mode_ = static_cast<ColorMode>(modeBox_->currentData().toInt());
    modelA_ = aBox_->currentData().toInt();
    modelB_ = bBox_->currentData().toInt();
    bBox_->setEnabled(mode_ == ColorMode::Difference);
    updateScale();
    emit optionsChanged();
}

void TextView::updateControls() {
    const QSignalBlocker b0(modeBox_);
    const QSignalBlocker b1(aBox_);
    const QSignalBlocker b2(bBox_);
    aBox_->clear();
    bBox_->clear();
    const int n = result() ? static_cast<int>(result()->models.size()) : 0;
    for (int m = 0; m < n; ++m) {
        aBox_->addItem(modelName(*result(), m), m);
        bBox_->addItem(modelName(*result(), m), m);
    }
    modeBox_->setCurrentIndex(mode_ == ColorMode::Bpt ? 0 : 1);
    aBox_->setCurrentIndex(std::max(0, aBox_->findData(modelA_)));
    bBox_->setCurrentIndex(std::max(0, bBox_->findData(modelB_)));
    bBox_->setEnabled(mode_ == ColorMode::Difference);
    modeBox_->setEnabled(n > 0);
}

void TextView::onResultChanged() {
    const int n = result() ? static_cast<int>(result()->models.size()) : 0;
    if (modelA_ < 0 || modelA_ >= n) modelA_ = 0;
    if (modelB_ < 0 || modelB_ >= n || modelB_ == modelA_) modelB_ = n > 1 ? (modelA_ == 0 ? 1 : 0) : 0;
    if (n < 2) mode_ = ColorMode::Bpt;
    if (auto prepared = std::static_pointer_cast<const TokenDisplay>(preparedData()); prepared && result())
        display_ = *prepared;
    else
        display_ = result() ? TokenDisplay::fromResult(*result()) : TokenDisplay();
    idText_.clear();
    if (result()) {
        int32_t maxId = -1;
        for (int32_t id : result()->token_ids) maxId = std::max(maxId, id);
        if (maxId >= 0 && maxId < (1 << 24)) {
            idText_.resize(static_cast<size_t>(maxId) + 1);
            for (size_t i = 0; i < result()->token_ids.size() && i < result()->token_text.size(); ++i) {
                const int32_t id = result()->token_ids[i];
                if (id >= 0 && idText_[static_cast<size_t>(id)].isNull()) idText_[static_cast<size_t>(id)] = printableToken(result()->token_text[i]);
            }
        }
    }
    updateControls();
    updateScale();
    canvas_->relayout();
}

Preparer TextView::preparer() const {
    return [](const AnalysisResult& r) -> PreparedData { return std::make_shared<const TokenDisplay>(TokenDisplay::fromResult(r)); };
}

void TextView::onStyleChanged() {
    // On screen, a reading size; in figures the paper style's tick font decides.
    QFont font = figureStyle().labelFont;
    font.setPixelSize(std::max(font.pixelSize() + 1, 10));
    font.setBold(false);
    canvas_->setTextFont(font);
}

void TextView::onTokenRangeChanged(double, double) {
    if (!canvas_ || canvas_->suppressScroll_ || !tokenAxis()) return;
    canvas_->scrollToToken(tokenAxis()->firstVisibleToken(), false);
}

void TextView::onTokenSelectionChanged(qint64 begin, qint64 end) {
    if (!canvas_) return;
    if (end > begin) canvas_->scrollToToken(begin, true);
    canvas_->viewport()->update();
}

void TextView::updateScale() {
    scaleMax_ = 1.0;
    if (result() && modelA_ >= 0 && modelA_ < static_cast<int>(result()->models.size())) {
        const auto& a = result()->models[static_cast<size_t>(modelA_)].bpt;
        if (mode_ == ColorMode::Bpt) {
            scaleMax_ = std::max(1.0, std::ceil(finiteQuantile(a, 0.98)));
        } else if (modelB_ >= 0 && modelB_ < static_cast<int>(result()->models.size())) {
            const auto& b = result()->models[static_cast<size_t>(modelB_)].bpt;
            std::vector<float> d(std::min(a.size(), b.size()));
            for (size_t i = 0; i < d.size(); ++i) d[i] = std::abs(a[i] - b[i]);
            const double q = finiteQuantile(d, 0.98);
            scaleMax_ = std::isfinite(q) ? std::max(0.5, std::ceil(q * 2.0) / 2.0) : 1.0;
        }
    }
    canvas_->viewport()->update();
    if (legend_) legend_->update();
}

double TextView::colorValue(qint64 token) const {
    if (!result() || token < 0 || token >= result()->token_count()) return kNaN;
    const auto& models = result()->models;
    if (modelA_ < 0 || modelA_ >= static_cast<int>(models.size())) return kNaN;
    const auto& a = models[static_cast<size_t>(modelA_)].bpt;
    const auto t = static_cast<size_t>(token);
    if (t >= a.size()) return kNaN;
    if (mode_ == ColorMode::Bpt) return a[t];
    if (modelB_ < 0 || modelB_ >= static_cast<int>(models.size())) return kNaN;
    const auto& b = models[static_cast<size_t>(modelB_)].bpt;
    return t < b.size() ? static_cast<double>(a[t]) - static_cast<double>(b[t]) : kNaN;
}

QColor TextView::tokenColor(qint64 token) const {
    const double v = colorValue(token);
    if (mode_ == ColorMode::Bpt) return ColorMap::sequential().at(v / scaleMax_);
    return ColorMap::diverging().at(0.5 + 0.5 * v / scaleMax_);
}

QString TextView::colorScaleLabel() const {
    if (!result() || result()->models.empty()) return tr("no analysis");
    if (mode_ == ColorMode::Bpt) return tr("bits per token, %1").arg(modelName(*result(), modelA_));
    return tr("Δ bpt: %1 − %2").arg(modelName(*result(), modelA_), modelName(*result(), modelB_));
}

QString TextView::tooltipHtml(qint64 token) const {
    if (!result() || token < 0 || token >= result()->token_count()) return {};
    const AnalysisResult& r = *result();
    const auto t = static_cast<size_t>(token);
    QString html = tr("<b>token %1</b>: <code>%2</code> <small>(id %3, byte %4)</small>")
                       .arg(token)
                       .arg(printableToken(tokenText(r, token)).toHtmlEscaped())
                       .arg(r.token_ids[t])
                       .arg(t < r.byte_offsets.size() ? r.byte_offsets[t] : 0);
    html += QStringLiteral("<table cellspacing='4'><tr><th align='left'>%1</th><th align='right'>bpt</th><th align='left'>%2</th></tr>")
                .arg(tr("model"), tr("expected here (top predictions)"));
    const auto colors = modelColors(r);
    for (int m = 0; m < static_cast<int>(r.models.size()); ++m) {
        const ModelTrace& model = r.models[static_cast<size_t>(m)];
        const float v = t < model.bpt.size() ? model.bpt[t] : std::numeric_limits<float>::quiet_NaN();
        QString predictions;
        // The predictions for token i were made at position i - 1.
        if (token > 0 && model.top_k > 0 && static_cast<size_t>(token) * static_cast<size_t>(model.top_k) <= model.top.size()) {
            QStringList items;
            for (int k = 0; k < model.top_k; ++k) {
                const TopPrediction& p = model.top[(t - 1) * static_cast<size_t>(model.top_k) + static_cast<size_t>(k)];
                // (bounds: token * top_k <= top.size() was checked above)
                QString item = QStringLiteral("<code>%1</code>&nbsp;%2").arg(tokenIdText(p.token_id).toHtmlEscaped()).arg(p.probability, 0, 'f', 3);
                if (p.token_id == r.token_ids[t]) item = QStringLiteral("<b>%1</b>").arg(item);
                items << item;
            }
            predictions = items.join(QStringLiteral(", "));
        } else {
            predictions = tr("(no context)");
        }
        html += QStringLiteral("<tr><td><font color='%1'>■</font>&nbsp;%2</td><td align='right'>%3</td><td>%4</td></tr>")
                    .arg(colors[m].name(), modelName(r, m).toHtmlEscaped(), std::isnan(v) ? QStringLiteral("–") : QString::number(v, 'f', 2),
                         predictions);
    }
    html += QStringLiteral("</table>");
    return html;
}

void TextView::drawLegend(QPainter* p, const QRectF& rect, const QFont& font) const {
    p->save();
    p->setFont(font);
    const QFontMetricsF fm(font);
    const QString label = colorScaleLabel();
    const qreal labelWidth = std::min(fm.horizontalAdvance(label) + fm.height(), rect.width() * 0.55);
    p->setPen(Qt::black);
    p->drawText(QRectF(rect.left(), rect.top(), labelWidth, rect.height()), Qt::AlignLeft | Qt::AlignVCenter,
                fm.elidedText(label, Qt::ElideRight, labelWidth - fm.height() * 0.5));
    const qreal barLeft = rect.left() + labelWidth;
    const qreal barWidth = std::max<qreal>(rect.width() - labelWidth - fm.horizontalAdvance(QStringLiteral("00.0")), 20.0);
    const qreal barHeight = std::max<qreal>(rect.height() - fm.height() - 2, 3.0);
    const QRectF bar(barLeft, rect.top(), barWidth, barHeight);
    QLinearGradient gradient(bar.topLeft(), bar.topRight());
    const ColorMap& map = mode_ == ColorMode::Bpt ? ColorMap::sequential() : ColorMap::diverging();
    for (int i = 0; i <= 20; ++i) gradient.setColorAt(i / 20.0, map.at(i / 20.0));
    p->fillRect(bar, gradient);
    p->setPen(QPen(QColor(0, 0, 0, 160), 0.5));
    p->drawRect(bar);
    const double lo = mode_ == ColorMode::Bpt ? 0.0 : -scaleMax_;
    for (int i = 0; i <= 4; ++i) {
        const double v = lo + (scaleMax_ - lo) * i / 4.0;
        const qreal x = bar.left() + bar.width() * i / 4.0;
        p->drawLine(QPointF(x, bar.bottom()), QPointF(x, bar.bottom() + 2));
        const QString text = (mode_ == ColorMode::Difference && v > 0 ? QStringLiteral("+") : QString()) +
                             QString::number(v, 'g', 3) + (i == 4 && mode_ == ColorMode::Bpt ? QStringLiteral("+") : QString());
        const qreal w = fm.horizontalAdvance(text);
        p->drawText(QPointF(std::clamp(x - w / 2, bar.left() - w / 2, bar.right() - w / 2), bar.bottom() + 2 + fm.ascent()), text);
    }
    p->restore();
}

void TextView::drawTokens(QPainter* p, const TextLayout& layout, const QFont& font, int firstLine, int lastLine, qreal top,
                          qreal left, qint64 hovered) const {
    if (layout.lineCount() == 0 || layout.end <= layout.first) return;
    p->save();
    p->setFont(font);
    const qreal pitch = layout.lineHeight;
    const qreal boxHeight = pitch - 1.0;
    const TokenAxis* axis = tokenAxis();
    const bool hasSelection = axis && axis->hasSelection();
    lastLine = std::min(lastLine, layout.lineCount() - 1);
    for (int l = std::max(firstLine, 0); l <= lastLine; ++l) {
        const qreal y = top + (l - firstLine) * pitch;
        const qint64 a = layout.lineStart[static_cast<size_t>(l)];
        const qint64 b = l + 1 < layout.lineCount() ? layout.lineStart[static_cast<size_t>(l) + 1] : layout.end;
        for (qint64 t = a; t < b && t < layout.end; ++t) {
            const auto i = static_cast<size_t>(t - layout.first);
            if (layout.line[i] != l) continue;
            const QRectF box(left + layout.x[i], y, layout.width[i], boxHeight);
            const QColor bg = tokenColor(t);
            p->fillRect(box, bg);
            if (hasSelection && t >= axis->selectionBegin() && t < axis->selectionEnd()) {
                p->fillRect(box, QColor(0, 90, 200, 60));
                p->fillRect(QRectF(box.left(), box.bottom() - 2, box.width(), 2), QColor(0, 70, 180));
            }
            const QStringView s = display_.token(t);
            if (!s.isEmpty()) {
                p->setPen(textColorOn(bg));
                p->drawText(QPointF(box.left(), y + 1.0 + layout.ascent), s.toString());
            }
            if (t == hovered) {
                p->setPen(QPen(Qt::black, 1.0));
                p->drawRect(box.adjusted(0.5, 0.5, -0.5, -0.5));
            }
        }
    }
    p->restore();
}

double TextView::figureAspect(const FigurePreset& preset) const { return preset.widthInches < 5 ? 0.62 : 0.32; }

void TextView::renderFigure(QCPPainter* painter, const QSize& size) {
    const FigureStyle& style = figureStyle();
    QFont font = style.tickFont;
    font.setBold(false);
    QFont legendFont = style.legendFont;
    const QFontMetricsF fm(legendFont);
    painter->save();
    painter->fillRect(QRectF(0, 0, size.width(), size.height()), Qt::white);
    painter->setRenderHint(QPainter::Antialiasing, true);
    const qreal margin = style.paper ? 2.0 : kPad;
    const QRectF legendRect(margin, margin, size.width() - 2 * margin, fm.height() * 2.0 + 2.0);
    drawLegend(painter, legendRect, legendFont);
    const qreal top = legendRect.bottom() + fm.height() * 0.5;
    const qint64 first = tokenAxis() ? tokenAxis()->firstVisibleToken() : 0;
    TextLayout probe = TextLayout::build(display_, font, size.width() - 2 * margin, first, first + 1);
    const int lines = std::max(1, static_cast<int>((size.height() - top - margin) / probe.lineHeight));
    const TextLayout layout = TextLayout::build(display_, font, size.width() - 2 * margin, first, display_.size(), lines);
    drawTokens(painter, layout, font, 0, lines - 1, top, margin, -1);
    painter->restore();
}

QStringList TextView::writeCsv(const QString& basePath, CsvRange range) const {
    const QString path = basePath + QStringLiteral(".csv");
    CsvWriter csv(path);
    QStringList header{QStringLiteral("token"), QStringLiteral("token_id"), QStringLiteral("byte_offset"), QStringLiteral("token_text")};
    const AnalysisResult* r = result().get();
    if (r)
        for (int m = 0; m < static_cast<int>(r->models.size()); ++m) header << QStringLiteral("bpt_%1").arg(modelName(*r, m));
    header << (mode_ == ColorMode::Bpt ? QStringLiteral("color_value_bpt") : QStringLiteral("color_value_difference"));
    csv.row(header);
    const auto [begin, end] = csvTokenSpan(range);
    for (qint64 i = begin; r && i < end; ++i) {
        const auto t = static_cast<size_t>(i);
        QStringList row{QString::number(i), QString::number(r->token_ids[t]),
                        t < r->byte_offsets.size() ? QString::number(r->byte_offsets[t]) : QString(),
                        printableToken(tokenText(*r, i))};
        for (const auto& model : r->models) row << CsvWriter::number(t < model.bpt.size() ? model.bpt[t] : kNaN);
        row << CsvWriter::number(colorValue(i));
        csv.row(row);
    }
    csv.close();
    return {path};
}

}  // namespace harmonic::views

// The one token axis every view follows: the visible range (zoom/pan) and the selected tokens.
// Views write to it when the user acts and redraw when it changes, so they never talk to each
// other directly.
#pragma once

#include <QObject>

namespace harmonic::views {

class TokenAxis : public QObject {
    Q_OBJECT
public:
    explicit TokenAxis(QObject* parent = nullptr);

    // Resets the range to all tokens and clears the selection.
    void setTokenCount(qint64 count);
    qint64 tokenCount() const { return count_; }

    // Visible range in token coordinates (token i is centred on x = i).
    double lower() const { return lower_; }
    double upper() const { return upper_; }
    void setRange(double lower, double upper);
    void resetRange();
    // Full extent: [-0.5, count - 0.5].
    double fullLower() const { return -0.5; }
    double fullUpper() const { return static_cast<double>(count_) - 0.5; }
    // The tokens whose centre lies in the visible range: [firstVisibleToken, endVisibleToken).
    qint64 firstVisibleToken() const;
    qint64 endVisibleToken() const;

    // Selected tokens [begin, end); begin == end means no selection.
    bool hasSelection() const { return selectionEnd_ > selectionBegin_; }
    qint64 selectionBegin() const { return selectionBegin_; }
    qint64 selectionEnd() const { return selectionEnd_; }
    void setSelection(qint64 begin, qint64 end);
    void clearSelection() { setSelection(0, 0); }

signals:
    void rangeChanged(double lower, double upper);
    void selectionChanged(qint64 begin, qint64 end);
    void tokenCountChanged(qint64 count);

private:
    qint64 count_ = 0;
    double lower_ = -0.5;
    double upper_ = 0.5;
    qint64 selectionBegin_ = 0;
    qint64 selectionEnd_ = 0;
};

}  // namespace harmonic::views

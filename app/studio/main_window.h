// The Harmonic Studio window: every view at once on one token axis, the session (checkpoints,
// text, device, precision), the worker-thread analysis, export and the causality audit.
#pragma once

#include <QMainWindow>
#include <QPointer>
#include <QSettings>
#include <memory>

#include "app/studio/analysis_runner.h"
#include "app/studio/studio_backend.h"
#include "views/figure_export.h"

class QAction;
class QActionGroup;
class QDockWidget;
class QLabel;
class QListWidget;
class QMenu;
class QMimeData;
class QProgressBar;

namespace harmonic::views {
class AnalysisView;
class BptView;
class LevelsView;
class SummaryView;
class TextView;
class TimescaleView;
class TokenAxis;
}  // namespace harmonic::views

namespace harmonic::studio {

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    // settingsFile: an INI file instead of the user's settings (tests, portable use).
    explicit MainWindow(StudioBackend backend, const QString& settingsFile = {}, QWidget* parent = nullptr);
    ~MainWindow() override;

    // The session. Each returns false after telling the user what went wrong.
    // Models are independent items: each is analysed, fails or is removed on its own, and a
    // failed one is left out of later runs until it is added again.
    enum class ModelState { Pending, Loaded, Failed };
    bool addCheckpoints(const QStringList& folders);
    void clearCheckpoints();
    bool removeCheckpoint(const QString& folder);
    void removeSelectedModels();
    QStringList checkpoints() const;
    ModelState modelState(const QString& folder) const;
    QString modelError(const QString& folder) const;
    QListWidget* modelList() const { return modelList_; }
    bool openTextFile(const QString& path);
    void setText(const QString& name, std::string text, const QString& path = {});
    bool hasText() const { return text_ && !text_->empty(); }
    // The bundled demo (resources/demo): checkpoints of all three families and a text.
    bool openDemo();
    static QString findDemo();

    void setDevice(const QString& device);  // auto, cpu, cuda
    QString device() const { return device_; }
    void setPrecision(const QString& precision);  // fp32, bf16
    QString precision() const { return precision_; }
    void setMaxTokens(qint64 tokens);
    // Run automatically when both checkpoints and a text are present (default on).
    void setAutoRun(bool on) { autoRun_ = on; }

    void runAnalysis();
    void cancelAnalysis();
    bool isAnalysing() const;
    // prepared: the views' prepared data in the order text, bpt, levels, timescales, summary.
    void setResult(std::shared_ptr<const AnalysisResult> result, const std::vector<views::PreparedData>& prepared = {});
    std::shared_ptr<const AnalysisResult> result() const { return result_; }

    // Errors go to a message box, or (quiet: tests, --screenshot) to stderr and errorReported.
    void setQuietErrors(bool quiet) { quiet_ = quiet; }
    bool saveScreenshot(const QString& path);
    // The size a window opens with on a screen of this available size: most of it, never more.
    static QSize defaultSize(const QSize& available);
    // Sizes the window for its screen (centred) and lays the docks out in proportion to it.
    void applyDefaultGeometry(const QSize& size = {});
    // The name of the text whose analysis is on screen (the loaded text when none is).
    QString shownTextName() const;
    // What a drop does: folders become checkpoints, a file the text, plain text is pasted.
    bool handleDrop(const QMimeData* mime);
    QStringList exportFigureSet(const QString& folder, const views::ExportOptions& options);

    double lastUiStallMs() const { return lastStallMs_; }
    double lastViewUpdateMs() const { return lastViewUpdateMs_; }
    QString statusText() const;

    views::TokenAxis* tokenAxis() const { return axis_; }
    views::TextView* textView() const { return textView_; }
    views::BptView* bptView() const { return bptView_; }
    views::LevelsView* levelsView() const { return levelsView_; }
    views::TimescaleView* timescaleView() const { return timescaleView_; }
    views::SummaryView* summaryView() const { return summaryView_; }

signals:
    void analysisFinished(bool ok);
    void errorReported(const QString& message);

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;
    void closeEvent(QCloseEvent* event) override;
    void showEvent(QShowEvent* event) override;

private:
    void buildViews();
    void buildMenus();
    void updateActions();
    void updateTitle();
    void showStatus(const QString& message);
    void reportError(const QString& title, const QString& message, const QString& hint);
    void rememberRecent(const QString& key, const QString& value);
    void fillRecentMenu(QMenu* menu, const QString& key, bool checkpoints);
    void maybeAutoRun();
    void onProgress(double fraction, const QString& stage);
    void onFinished(std::shared_ptr<const AnalysisResult> result, std::vector<views::PreparedData> prepared, const QStringList& modelErrors);
    std::vector<views::AnalysisView*> views() const;
    void onFailed(const QString& message, bool cancelled, const QStringList& modelErrors);
    void recordModelErrors(const QStringList& modelErrors);
    QStringList analysableCheckpoints() const;
    void updateModelList();
    void arrangeDocks(const QSize& size);
    void compareDefaultPair();
    void openCheckpointDialog();
    void openTextDialog();
    void pasteText();
    void exportViewDialog(views::AnalysisView* view);
    void exportFigureSetDialog();
    void openCausalityAudit();
    void askMaxTokens();
    static QString hintFor(const QString& message);

    StudioBackend backend_;
    std::unique_ptr<QSettings> settings_;
    AnalysisRunner* runner_ = nullptr;

    struct ModelEntry {
        QString path;
        ModelState state = ModelState::Pending;
        QString error;
    };
    std::vector<ModelEntry> models_;
    QStringList runCheckpoints_;  // what the run in flight analyses, in order
    QStringList shownModels_;     // model names of the result on screen, to notice a new set
    bool docksArranged_ = false;
    int placedCompact_ = -1;  // which dock arrangement is in place: 1 tabs in one column, 0 a bottom row
    std::shared_ptr<const std::string> text_;
    QString textName_;
    QString textPath_;
    QString device_ = QStringLiteral("auto");
    QString precision_ = QStringLiteral("fp32");
    qint64 maxTokens_ = 0;
    bool autoRun_ = true;
    bool quiet_ = false;
    bool rerunWhenDone_ = false;
    std::shared_ptr<const AnalysisResult> result_;
    double lastStallMs_ = 0;
    double lastViewUpdateMs_ = 0;

    views::TokenAxis* axis_ = nullptr;
    views::TextView* textView_ = nullptr;
    views::BptView* bptView_ = nullptr;
    views::LevelsView* levelsView_ = nullptr;
    views::TimescaleView* timescaleView_ = nullptr;
    views::SummaryView* summaryView_ = nullptr;
    QListWidget* modelList_ = nullptr;
    QDockWidget* textDock_ = nullptr;
    QDockWidget* levelsDock_ = nullptr;
    QDockWidget* timescaleDock_ = nullptr;
    QDockWidget* summaryDock_ = nullptr;
    QDockWidget* modelsDock_ = nullptr;

    QAction* removeModelAction_ = nullptr;
    QAction* runAction_ = nullptr;
    QAction* cancelAction_ = nullptr;
    QAction* exportSetAction_ = nullptr;
    QMenu* exportViewMenu_ = nullptr;
    QAction* auditAction_ = nullptr;
    QActionGroup* deviceGroup_ = nullptr;
    QActionGroup* precisionGroup_ = nullptr;
    QProgressBar* progress_ = nullptr;
    QLabel* statusLabel_ = nullptr;
    QLabel* sessionLabel_ = nullptr;
};

}  // namespace harmonic::studio

#include "app/studio/main_window.h"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QCloseEvent>
#include <QCoreApplication>
#include <QDir>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QElapsedTimer>
#include <QFileDialog>
#include <QFileInfo>
#include <QGuiApplication>
#include <QHBoxLayout>
#include <QListWidget>
#include <QPushButton>
#include <QScreen>
#include <QShowEvent>
#include <QVBoxLayout>
#include <QInputDialog>
#include <QLabel>
#include <QLocale>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QStatusBar>
#include <QToolBar>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "app/studio/causality_dialog.h"
#include "app/studio/export_dialog.h"
#include "views/bpt_view.h"
#include "views/levels_view.h"
#include "views/summary_view.h"
#include "views/text_view.h"
#include "views/timescale_view.h"
#include "views/token_axis.h"

#ifndef HARMONIC_RESOURCES
#define HARMONIC_RESOURCES ""
#endif

namespace harmonic::studio {

namespace {
constexpr int kMaxRecent = 10;
const QString kRecentTexts = QStringLiteral("recent/texts");
const QString kRecentCheckpoints = QStringLiteral("recent/checkpoints");

std::string readWholeFile(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error(file.string() + ": cannot be opened");
    std::ostringstream out;
    out << in.rdbuf();
    std::string text = out.str();
    if (text.empty()) throw std::runtime_error(file.string() + ": the file is empty");
    return text;
}
}  // namespace

MainWindow::MainWindow(StudioBackend backend, const QString& settingsFile, QWidget* parent)
    : QMainWindow(parent), backend_(std::move(backend)) {
    settings_ = settingsFile.isEmpty() ? std::make_unique<QSettings>()
                                       : std::make_unique<QSettings>(settingsFile, QSettings::IniFormat);
    if (!backend_.readText) backend_.readText = readWholeFile;
    runner_ = new AnalysisRunner(backend_, this);
    connect(runner_, &AnalysisRunner::progress, this, &MainWindow::onProgress);
    connect(runner_, &AnalysisRunner::finished, this, &MainWindow::onFinished);
    connect(runner_, &AnalysisRunner::failed, this, &MainWindow::onFailed);

    setWindowTitle(tr("Harmonic Studio"));
    setAcceptDrops(true);
    setDockOptions(QMainWindow::AnimatedDocks | QMainWindow::AllowNestedDocks | QMainWindow::AllowTabbedDocks);
    buildViews();
    buildMenus();

    progress_ = new QProgressBar(this);
    progress_->setRange(0, 1000);
    progress_->setMaximumWidth(220);
    progress_->setVisible(false);
    statusLabel_ = new QLabel(this);
    sessionLabel_ = new QLabel(this);
    statusBar()->addWidget(statusLabel_, 1);
    statusBar()->addPermanentWidget(progress_);
    statusBar()->addPermanentWidget(sessionLabel_);

    setDevice(settings_->value(QStringLiteral("analysis/device"), QStringLiteral("auto")).toString());
    setPrecision(settings_->value(QStringLiteral("analysis/precision"), QStringLiteral("fp32")).toString());
    maxTokens_ = settings_->value(QStringLiteral("analysis/maxTokens"), 0).toLongLong();
    applyDefaultGeometry();
    if (restoreGeometry(settings_->value(QStringLiteral("window/geometry")).toByteArray())) {
        // A window saved on a larger display still has to fit this one.
        const QRect available = (screen() ? screen() : QGuiApplication::primaryScreen())->availableGeometry();
        if (width() > available.width() || height() > available.height()) applyDefaultGeometry();
    }
    docksArranged_ = restoreState(settings_->value(QStringLiteral("window/state")).toByteArray());
    updateActions();
    updateTitle();
    showStatus(tr("Open checkpoints and a text, or drop them on the window."));
}

MainWindow::~MainWindow() = default;

// --- building --------------------------------------------------------------------------

void MainWindow::buildViews() {
    axis_ = new views::TokenAxis(this);
    textView_ = new views::TextView;
    bptView_ = new views::BptView;
    levelsView_ = new views::LevelsView;
    timescaleView_ = new views::TimescaleView;
    summaryView_ = new views::SummaryView;
    for (views::AnalysisView* v : std::initializer_list<views::AnalysisView*>{textView_, bptView_, levelsView_, timescaleView_, summaryView_})
        v->setTokenAxis(axis_);

    // Every view at once: bpt in the middle, the text above it, levels beside, the timescale
    // inspector and the summary below.
    setCentralWidget(bptView_);
    auto dock = [this](views::AnalysisView* view, Qt::DockWidgetArea area, const QString& name) {
        auto* d = new QDockWidget(view->title(), this);
        d->setObjectName(name);  // saveState needs names
        d->setWidget(view);
        d->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable | QDockWidget::DockWidgetClosable);
        addDockWidget(area, d);
        return d;
    };
    textDock_ = dock(textView_, Qt::TopDockWidgetArea, QStringLiteral("textDock"));
    levelsDock_ = dock(levelsView_, Qt::RightDockWidgetArea, QStringLiteral("levelsDock"));
    timescaleDock_ = dock(timescaleView_, Qt::BottomDockWidgetArea, QStringLiteral("timescaleDock"));
    summaryDock_ = dock(summaryView_, Qt::BottomDockWidgetArea, QStringLiteral("summaryDock"));

    // The models of the session, one row each with its state or its own error.
    auto* modelsPanel = new QWidget;
    auto* modelsLayout = new QVBoxLayout(modelsPanel);
    modelsLayout->setContentsMargins(4, 2, 4, 4);
    modelList_ = new QListWidget(modelsPanel);
    modelList_->setObjectName(QStringLiteral("modelList"));
    modelList_->setSelectionMode(QAbstractItemView::ExtendedSelection);
    modelList_->setWordWrap(true);
    modelList_->setContextMenuPolicy(Qt::ActionsContextMenu);
    modelsLayout->addWidget(modelList_, 1);
    auto* buttons = new QHBoxLayout;
    auto* add = new QPushButton(tr("Add…"), modelsPanel);
    auto* remove = new QPushButton(tr("Remove"), modelsPanel);
    remove->setObjectName(QStringLiteral("removeModelButton"));
    buttons->addWidget(add);
    buttons->addWidget(remove);
    buttons->addStretch(1);
    modelsLayout->addLayout(buttons);
    connect(add, &QPushButton::clicked, this, &MainWindow::openCheckpointDialog);
    connect(remove, &QPushButton::clicked, this, &MainWindow::removeSelectedModels);
    removeModelAction_ = new QAction(tr("&Remove Model"), this);
    removeModelAction_->setShortcut(QKeySequence::Delete);
    removeModelAction_->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    connect(removeModelAction_, &QAction::triggered, this, &MainWindow::removeSelectedModels);
    modelList_->addAction(removeModelAction_);
    connect(modelList_, &QListWidget::itemSelectionChanged, this, [this, remove] {
        const bool any = !modelList_->selectedItems().isEmpty();
        remove->setEnabled(any);
        removeModelAction_->setEnabled(any);
    });
    remove->setEnabled(false);
    removeModelAction_->setEnabled(false);
    modelsDock_ = new QDockWidget(tr("Models"), this);
    modelsDock_->setObjectName(QStringLiteral("modelsDock"));
    modelsDock_->setWidget(modelsPanel);
    modelsDock_->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable | QDockWidget::DockWidgetClosable);
    addDockWidget(Qt::BottomDockWidgetArea, modelsDock_);
}

QSize MainWindow::defaultSize(const QSize& available) {
    // Most of the screen, leaving room for the window frame; never more than the screen.
    const QSize want(static_cast<int>(available.width() * 0.94), static_cast<int>(available.height() * 0.93));
    return want.boundedTo(available).expandedTo(QSize(640, 480)).boundedTo(available);
}

void MainWindow::applyDefaultGeometry(const QSize& size) {
    const QScreen* s = screen() ? screen() : QGuiApplication::primaryScreen();
    const QRect available = s ? s->availableGeometry() : QRect(0, 0, 1280, 800);
    const QSize target = size.isValid() ? size : defaultSize(available.size());
    // Docks first: the layout they had may not fit into the target size.
    arrangeDocks(target);
    if (layout()) layout()->activate();
    resize(target);
    move(available.center() - QPoint(target.width() / 2, target.height() / 2));
    // Dock sizes are shares of the window: set them again once it is shown at its size.
    docksArranged_ = false;
    if (isVisible()) showEvent(nullptr);
}

void MainWindow::arrangeDocks(const QSize& size) {
    // In proportion to the window, so every view keeps a readable share on small screens too.
    const int w = size.width();
    const int h = size.height();
    const int compact = h < 900 ? 1 : 0;
    const bool place = compact != placedCompact_;
    placedCompact_ = compact;
    if (place) {
        for (QDockWidget* d : {textDock_, levelsDock_, timescaleDock_, summaryDock_, modelsDock_}) {
            d->setFloating(false);
            removeDockWidget(d);
        }
        addDockWidget(Qt::TopDockWidgetArea, textDock_);
        addDockWidget(Qt::RightDockWidgetArea, levelsDock_);
    }
    if (compact) {
        // A laptop screen: a bottom row would squash every plot, so timescales, summary and
        // models share the levels' column as tabs.
        if (place) {
            tabifyDockWidget(levelsDock_, timescaleDock_);
            tabifyDockWidget(levelsDock_, summaryDock_);
            tabifyDockWidget(levelsDock_, modelsDock_);
            for (QDockWidget* d : {textDock_, levelsDock_, timescaleDock_, summaryDock_, modelsDock_}) d->show();
            levelsDock_->raise();
        }
        resizeDocks({textDock_}, {std::max(120, h * 24 / 100)}, Qt::Vertical);
        resizeDocks({levelsDock_}, {std::max(360, w * 42 / 100)}, Qt::Horizontal);
        return;
    }
    if (place) {
        addDockWidget(Qt::BottomDockWidgetArea, timescaleDock_);
        splitDockWidget(timescaleDock_, summaryDock_, Qt::Horizontal);
        tabifyDockWidget(summaryDock_, modelsDock_);
        for (QDockWidget* d : {textDock_, levelsDock_, timescaleDock_, summaryDock_, modelsDock_}) d->show();
        summaryDock_->raise();
    }
    resizeDocks({textDock_}, {std::max(120, h * 22 / 100)}, Qt::Vertical);
    resizeDocks({levelsDock_}, {std::max(320, w * 36 / 100)}, Qt::Horizontal);
    resizeDocks({timescaleDock_}, {std::max(200, h * 30 / 100)}, Qt::Vertical);
    resizeDocks({timescaleDock_, summaryDock_}, {w * 62 / 100, w * 38 / 100}, Qt::Horizontal);
}

void MainWindow::showEvent(QShowEvent* event) {
    if (event) QMainWindow::showEvent(event);
    if (!docksArranged_) {
        docksArranged_ = true;
        arrangeDocks(size());
    }
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    QAction* openCheckpoint = file->addAction(tr("Open &Checkpoint…"), this, &MainWindow::openCheckpointDialog);
    openCheckpoint->setShortcut(QKeySequence(tr("Ctrl+Shift+O")));
    openCheckpoint->setToolTip(tr("Add a checkpoint folder of any model family; several may be open"));
    file->addAction(removeModelAction_);
    file->addAction(tr("C&lear Checkpoints"), this, &MainWindow::clearCheckpoints);
    QMenu* recentCheckpoints = file->addMenu(tr("Recent Checkpoints"));
    connect(recentCheckpoints, &QMenu::aboutToShow, this, [this, recentCheckpoints] { fillRecentMenu(recentCheckpoints, kRecentCheckpoints, true); });
    file->addSeparator();
    QAction* openText = file->addAction(tr("Open &Text…"), this, &MainWindow::openTextDialog);
    openText->setShortcut(QKeySequence::Open);
    QAction* paste = file->addAction(tr("&Paste Text…"), this, &MainWindow::pasteText);
    paste->setShortcut(QKeySequence(tr("Ctrl+Shift+V")));
    QMenu* recentTexts = file->addMenu(tr("Recent Texts"));
    connect(recentTexts, &QMenu::aboutToShow, this, [this, recentTexts] { fillRecentMenu(recentTexts, kRecentTexts, false); });
    file->addSeparator();
    file->addAction(tr("Open &Demo"), this, [this] {
        if (!openDemo())
            reportError(tr("Demo not found"), tr("The bundled demo is not installed."),
                        tr("Expected checkpoints in resources/demo/{harmonic,transformer,mamba} and resources/demo/demo.txt. "
                           "Build them with the training scripts, or open your own checkpoints with File ▸ Open Checkpoint…"));
    });
    file->addSeparator();
    exportViewMenu_ = file->addMenu(tr("&Export View"));
    for (views::AnalysisView* v : std::initializer_list<views::AnalysisView*>{textView_, bptView_, levelsView_, timescaleView_, summaryView_})
        exportViewMenu_->addAction(v->title() + QStringLiteral("…"), this, [this, v] { exportViewDialog(v); });
    exportSetAction_ = file->addAction(tr("Export &Figure Set…"), this, &MainWindow::exportFigureSetDialog);
    exportSetAction_->setShortcut(QKeySequence(tr("Ctrl+E")));
    file->addSeparator();
    QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setShortcut(QKeySequence::Quit);

    QMenu* analysis = menuBar()->addMenu(tr("&Analysis"));
    runAction_ = analysis->addAction(tr("&Run"), this, &MainWindow::runAnalysis);
    runAction_->setShortcut(QKeySequence(Qt::Key_F5));
    cancelAction_ = analysis->addAction(tr("&Cancel"), this, &MainWindow::cancelAnalysis);
    cancelAction_->setShortcut(QKeySequence(Qt::Key_Escape));
    analysis->addSeparator();
    QMenu* deviceMenu = analysis->addMenu(tr("&Device"));
    deviceGroup_ = new QActionGroup(this);
    for (const auto& [id, label] : {std::pair{QStringLiteral("auto"), tr("Automatic (CUDA when available)")},
                                    std::pair{QStringLiteral("cpu"), tr("CPU")}, std::pair{QStringLiteral("cuda"), tr("CUDA GPU")}}) {
        QAction* a = deviceMenu->addAction(label);
        a->setCheckable(true);
        a->setData(id);
        deviceGroup_->addAction(a);
    }
    connect(deviceGroup_, &QActionGroup::triggered, this, [this](QAction* a) { setDevice(a->data().toString()); });
    QMenu* precisionMenu = analysis->addMenu(tr("&Precision"));
    precisionGroup_ = new QActionGroup(this);
    for (const auto& [id, label] : {std::pair{QStringLiteral("fp32"), tr("fp32")}, std::pair{QStringLiteral("bf16"), tr("bf16 (CUDA only)")}}) {
        QAction* a = precisionMenu->addAction(label);
        a->setCheckable(true);
        a->setData(id);
        precisionGroup_->addAction(a);
    }
    connect(precisionGroup_, &QActionGroup::triggered, this, [this](QAction* a) { setPrecision(a->data().toString()); });
    analysis->addAction(tr("&Maximum Tokens…"), this, &MainWindow::askMaxTokens);
    analysis->addSeparator();
    auditAction_ = analysis->addAction(tr("Causality &Audit…"), this, &MainWindow::openCausalityAudit);

    QMenu* view = menuBar()->addMenu(tr("&View"));
    view->addAction(tr("&Reset Zoom"), this, [this] { axis_->resetRange(); })->setShortcut(QKeySequence(tr("Ctrl+0")));
    view->addAction(tr("Clear &Selection"), this, [this] { axis_->clearSelection(); });
    view->addSeparator();
    for (QDockWidget* d : findChildren<QDockWidget*>()) view->addAction(d->toggleViewAction());

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&How to use"), this, [this] {
        QMessageBox::information(
            this, tr("Harmonic Studio"),
            tr("<p>Drag in a plot to pan, use the wheel to zoom, double-click to see all tokens. Every view follows.</p>"
               "<p>Shift+drag or right-drag in a plot, or drag over the text, selects tokens in every view.</p>"
               "<p>Hover a token in the text for its bpt under each model and what each model expected there.</p>"));
    });
    help->addAction(tr("&About"), this, [this] {
        QMessageBox::about(this, tr("About Harmonic Studio"),
                           tr("<b>Harmonic Studio</b> %1<br>Analysis of hierarchical state-space language models.<br>"
                              "GPL-3.0-or-later. Plots by QCustomPlot.")
                               .arg(QCoreApplication::applicationVersion()));
    });

    auto* tools = addToolBar(tr("Main"));
    tools->setObjectName(QStringLiteral("mainToolbar"));
    tools->addAction(openCheckpoint);
    tools->addAction(openText);
    tools->addSeparator();
    tools->addAction(runAction_);
    tools->addAction(cancelAction_);
}

// --- session -----------------------------------------------------------------------------

bool MainWindow::addCheckpoints(const QStringList& folders) {
    QStringList missing;
    for (const QString& f : folders) {
        const QFileInfo info(f);
        if (!info.isDir()) {
            missing << f;
            continue;
        }
        const QString path = info.absoluteFilePath();
        // Adding a model again gives a failed one another try.
        auto it = std::find_if(models_.begin(), models_.end(), [&](const ModelEntry& m) { return m.path == path; });
        if (it == models_.end()) models_.push_back(ModelEntry{path, ModelState::Pending, {}});
        else if (it->state == ModelState::Failed) *it = ModelEntry{path, ModelState::Pending, {}};
    }
    updateModelList();
    updateActions();
    updateTitle();
    if (!missing.isEmpty()) {
        reportError(tr("Checkpoint not found"), tr("Not a folder: %1").arg(missing.join(QStringLiteral(", "))),
                    tr("A checkpoint is a folder (config.json and the weights). Choose it with File ▸ Open Checkpoint…"));
        return false;
    }
    maybeAutoRun();
    return true;
}

void MainWindow::clearCheckpoints() {
    models_.clear();
    if (isAnalysing()) {
        rerunWhenDone_ = false;
        runner_->cancel();
    }
    // Plots of models that are gone would contradict the model list.
    setResult(nullptr);
    updateModelList();
    updateActions();
    updateTitle();
    showStatus(tr("Checkpoints cleared."));
}

bool MainWindow::removeCheckpoint(const QString& folder) {
    const QString path = QFileInfo(folder).absoluteFilePath();
    auto it = std::find_if(models_.begin(), models_.end(), [&](const ModelEntry& m) { return m.path == path || m.path == folder; });
    if (it == models_.end()) return false;
    const QString removed = it->path;
    models_.erase(it);
    if (isAnalysing()) {
        // The run in flight includes it: start over without it.
        rerunWhenDone_ = !analysableCheckpoints().isEmpty() && hasText();
        runner_->cancel();
    }
    if (result_) {
        auto rest = std::make_shared<AnalysisResult>(*result_);
        const auto gone = std::remove_if(rest->models.begin(), rest->models.end(),
                                         [&](const ModelTrace& m) { return QString::fromStdString(m.checkpoint) == removed; });
        if (gone != rest->models.end()) {
            rest->models.erase(gone, rest->models.end());
            setResult(rest->models.empty() ? nullptr : std::shared_ptr<const AnalysisResult>(std::move(rest)));
        }
    }
    updateModelList();
    updateActions();
    updateTitle();
    showStatus(tr("Removed %1.").arg(QDir(removed).dirName()));
    return true;
}

void MainWindow::removeSelectedModels() {
    QStringList paths;
    for (QListWidgetItem* item : modelList_->selectedItems()) paths << item->data(Qt::UserRole).toString();
    for (const QString& p : paths) removeCheckpoint(p);
}

QStringList MainWindow::checkpoints() const {
    QStringList paths;
    for (const ModelEntry& m : models_) paths << m.path;
    return paths;
}

QStringList MainWindow::analysableCheckpoints() const {
    QStringList paths;
    for (const ModelEntry& m : models_)
        if (m.state != ModelState::Failed) paths << m.path;
    return paths;
}

MainWindow::ModelState MainWindow::modelState(const QString& folder) const {
    const QString path = QFileInfo(folder).absoluteFilePath();
    for (const ModelEntry& m : models_)
        if (m.path == path || m.path == folder) return m.state;
    return ModelState::Pending;
}

QString MainWindow::modelError(const QString& folder) const {
    const QString path = QFileInfo(folder).absoluteFilePath();
    for (const ModelEntry& m : models_)
        if (m.path == path || m.path == folder) return m.error;
    return {};
}

void MainWindow::updateModelList() {
    QStringList selected;
    for (QListWidgetItem* item : modelList_->selectedItems()) selected << item->data(Qt::UserRole).toString();
    modelList_->clear();
    for (const ModelEntry& m : models_) {
        QString text = QDir(m.path).dirName();
        auto* item = new QListWidgetItem(modelList_);
        switch (m.state) {
        case ModelState::Pending:
            text += tr(" — not analysed yet");
            break;
        case ModelState::Loaded:
            text += tr(" — loaded");
            break;
        case ModelState::Failed:
            text += tr(" — failed: %1").arg(m.error);
            item->setForeground(QColor(170, 20, 20));
            break;
        }
        item->setText(text);
        item->setToolTip(m.path + (m.error.isEmpty() ? QString() : QStringLiteral("\n") + m.error));
        item->setData(Qt::UserRole, m.path);
        item->setSelected(selected.contains(m.path));
    }
}

void MainWindow::recordModelErrors(const QStringList& modelErrors) {
    if (modelErrors.size() != runCheckpoints_.size()) return;
    int failed = 0;
    for (const QString& e : modelErrors) failed += e.isEmpty() ? 0 : 1;
    // The same error from every model of several is the text's or the device's fault, not theirs.
    const bool shared = failed == modelErrors.size() && failed > 1 && modelErrors.count(modelErrors.front()) == failed;
    for (int i = 0; i < runCheckpoints_.size(); ++i) {
        auto it = std::find_if(models_.begin(), models_.end(), [&](const ModelEntry& m) { return m.path == runCheckpoints_[i]; });
        if (it == models_.end()) continue;
        if (modelErrors[i].isEmpty()) {
            it->state = ModelState::Loaded;
            it->error.clear();
            rememberRecent(kRecentCheckpoints, it->path);  // only folders that loaded
        } else {
            it->state = shared ? ModelState::Pending : ModelState::Failed;
            it->error = modelErrors[i];
        }
    }
    updateModelList();
}

bool MainWindow::openTextFile(const QString& path) {
    std::string text;
    try {
        text = backend_.readText(path.toStdString());
    } catch (const std::exception& e) {
        reportError(tr("Cannot open the text"), QString::fromUtf8(e.what()),
                    tr("Choose a UTF-8 text file (File ▸ Open Text…), or paste the text (File ▸ Paste Text…)."));
        return false;
    }
    rememberRecent(kRecentTexts, QFileInfo(path).absoluteFilePath());
    setText(QFileInfo(path).fileName(), std::move(text), QFileInfo(path).absoluteFilePath());
    return true;
}

void MainWindow::setText(const QString& name, std::string text, const QString& path) {
    text_ = std::make_shared<const std::string>(std::move(text));
    textName_ = name;
    textPath_ = path;
    updateActions();
    updateTitle();
    showStatus(tr("Text: %1 (%2 bytes)").arg(name, QLocale().toString(static_cast<qlonglong>(text_->size()))));
    maybeAutoRun();
}

QString MainWindow::findDemo() {
    // Installed next to the binary, in a build tree, or in the source tree.
    const QString exe = QCoreApplication::applicationDirPath();
    QStringList candidates = {exe + QStringLiteral("/../share/harmonic-studio/resources/demo"), exe + QStringLiteral("/resources/demo"),
                              exe + QStringLiteral("/../resources/demo"), exe + QStringLiteral("/../../resources/demo")};
    const QString compiled = QStringLiteral(HARMONIC_RESOURCES);
    if (!compiled.isEmpty()) candidates << compiled + QStringLiteral("/demo");
    for (const QString& c : candidates) {
        const QDir dir(c);
        if (dir.exists(QStringLiteral("demo.txt"))) return dir.absolutePath();
    }
    return {};
}

bool MainWindow::openDemo() {
    const QString demo = findDemo();
    if (demo.isEmpty()) {
        showStatus(tr("Demo not found (resources/demo): open checkpoints with File ▸ Open Checkpoint… and a text with File ▸ Open Text…"));
        return false;
    }
    QStringList found;
    for (const QString& family : {QStringLiteral("harmonic"), QStringLiteral("transformer"), QStringLiteral("mamba")})
        if (QFileInfo(demo + QLatin1Char('/') + family).isDir()) found << demo + QLatin1Char('/') + family;
    if (found.isEmpty()) {
        showStatus(tr("Demo text found but no demo checkpoints in %1/{harmonic,transformer,mamba}").arg(demo));
        return false;
    }
    const bool autoRun = autoRun_;
    autoRun_ = false;  // one run once both are in
    clearCheckpoints();
    addCheckpoints(found);
    const bool ok = openTextFile(demo + QStringLiteral("/demo.txt"));
    autoRun_ = autoRun;
    if (ok) maybeAutoRun();
    return ok;
}

void MainWindow::setDevice(const QString& device) {
    const QString d = device.trimmed().toLower();
    device_ = (d == QLatin1String("cpu") || d == QLatin1String("cuda")) ? d : QStringLiteral("auto");
    settings_->setValue(QStringLiteral("analysis/device"), device_);
    for (QAction* a : deviceGroup_->actions()) a->setChecked(a->data().toString() == device_);
    updateTitle();
}

void MainWindow::setPrecision(const QString& precision) {
    precision_ = precision.trimmed().toLower() == QLatin1String("bf16") ? QStringLiteral("bf16") : QStringLiteral("fp32");
    settings_->setValue(QStringLiteral("analysis/precision"), precision_);
    for (QAction* a : precisionGroup_->actions()) a->setChecked(a->data().toString() == precision_);
    updateTitle();
}

void MainWindow::setMaxTokens(qint64 tokens) {
    maxTokens_ = std::max<qint64>(0, tokens);
    settings_->setValue(QStringLiteral("analysis/maxTokens"), maxTokens_);
    updateTitle();
}

void MainWindow::maybeAutoRun() {
    if (!autoRun_ || analysableCheckpoints().isEmpty() || !hasText()) return;
    if (isAnalysing()) {
        // Inputs changed mid-run: start over with the new ones.
        rerunWhenDone_ = true;
        runner_->cancel();
        return;
    }
    runAnalysis();
}

// --- analysis ----------------------------------------------------------------------------

bool MainWindow::isAnalysing() const { return runner_->isRunning(); }

void MainWindow::runAnalysis() {
    if (isAnalysing()) return;
    const QStringList checkpoints = analysableCheckpoints();
    if (checkpoints.isEmpty()) {
        reportError(tr("No checkpoint"), tr("There is no checkpoint to analyse with."),
                    tr("Open one or more checkpoint folders with File ▸ Open Checkpoint… (or drop them on the window)."));
        return;
    }
    if (!hasText()) {
        reportError(tr("No text"), tr("There is no text to analyse."),
                    tr("Open a text file with File ▸ Open Text…, paste one with File ▸ Paste Text…, or drop a file on the window."));
        return;
    }
    AnalysisRequest request;
    for (const QString& c : checkpoints) request.checkpoints.emplace_back(c.toStdString());
    request.text = text_;
    request.textName = textName_.toStdString();
    request.options.device = device_.toStdString();
    request.options.precision = precision_.toStdString();
    request.options.max_tokens = maxTokens_;
    for (views::AnalysisView* v : views()) request.preparers.push_back(v->preparer());
    if (!runner_->start(request)) return;
    runCheckpoints_ = checkpoints;
    progress_->setValue(0);
    progress_->setVisible(true);
    showStatus(tr("Analysing %1 with %n model(s)…", nullptr, static_cast<int>(checkpoints.size())).arg(textName_));
    updateActions();
}

void MainWindow::cancelAnalysis() {
    if (!isAnalysing()) return;
    rerunWhenDone_ = false;
    runner_->cancel();
    showStatus(tr("Cancelling…"));
}

void MainWindow::onProgress(double fraction, const QString& stage) {
    progress_->setValue(static_cast<int>(std::clamp(fraction, 0.0, 1.0) * 1000));
    if (!stage.isEmpty()) showStatus(stage);
}

std::vector<views::AnalysisView*> MainWindow::views() const {
    return {textView_, bptView_, levelsView_, timescaleView_, summaryView_};
}

void MainWindow::setResult(std::shared_ptr<const AnalysisResult> result, const std::vector<views::PreparedData>& prepared) {
    QElapsedTimer timer;
    timer.start();
    result_ = std::move(result);
    if (result_) axis_->setTokenCount(result_->token_count());
    const auto all = views();
    for (size_t i = 0; i < all.size(); ++i) all[i]->setResult(result_, i < prepared.size() ? prepared[i] : nullptr);
    if (result_ && backend_.vocabulary && !result_->models.empty()) {
        try {
            textView_->setTokenTextFunction(backend_.vocabulary(result_->models.front().checkpoint));
        } catch (const std::exception&) {
            textView_->setTokenTextFunction({});  // predictions then show the text's own tokens or ids
        }
    }
    lastViewUpdateMs_ = static_cast<double>(timer.nsecsElapsed()) / 1e6;
    QStringList names;
    if (result_)
        for (const auto& m : result_->models) names << QString::fromStdString(m.name);
    if (names != shownModels_) {
        shownModels_ = names;
        compareDefaultPair();
    }
    updateActions();
    updateTitle();
}

void MainWindow::compareDefaultPair() {
    // Both comparisons (the bpt difference panel and the text colouring) show the same pair:
    // the first Harmonic model against the first baseline, else the first two models.
    if (!result_ || result_->models.size() < 2) return;
    const auto& models = result_->models;
    int a = -1;
    int b = -1;
    for (int m = 0; m < static_cast<int>(models.size()); ++m) {
        const bool harmonic = models[static_cast<size_t>(m)].family == "harmonic";
        if (harmonic && a < 0) a = m;
        if (!harmonic && b < 0) b = m;
    }
    if (a < 0 || b < 0) {
        a = 0;
        b = 1;
    }
    bptView_->setDifferenceModels(a, b);
    textView_->setColorByDifference(a, b);
}

void MainWindow::onFinished(std::shared_ptr<const AnalysisResult> result, std::vector<views::PreparedData> prepared,
                            const QStringList& modelErrors) {
    progress_->setVisible(false);
    lastStallMs_ = runner_->longestStallMs();
    if (rerunWhenDone_) {
        rerunWhenDone_ = false;
        runAnalysis();
        return;
    }
    recordModelErrors(modelErrors);
    setResult(std::move(result), prepared);
    const QLocale locale;
    QString message = tr("Analysed %1 tokens with %n model(s) in %2 s on %3 · longest UI stall %4 ms · views drawn in %5 ms", nullptr,
                         static_cast<int>(result_->models.size()))
                          .arg(locale.toString(static_cast<qlonglong>(result_->token_count())))
                          .arg(result_->seconds, 0, 'f', 2)
                          .arg(QString::fromStdString(result_->device))
                          .arg(lastStallMs_, 0, 'f', 0)
                          .arg(lastViewUpdateMs_, 0, 'f', 0);
    for (const auto& note : result_->notes) message += QStringLiteral(" · ") + QString::fromStdString(note);
    QStringList failures;
    for (int i = 0; i < modelErrors.size() && i < runCheckpoints_.size(); ++i)
        if (!modelErrors[i].isEmpty()) failures << QDir(runCheckpoints_[i]).dirName() + QStringLiteral(": ") + modelErrors[i];
    if (!failures.isEmpty()) message += tr(" · %n model(s) failed (see Models)", nullptr, static_cast<int>(failures.size()));
    showStatus(message);
    updateActions();
    updateTitle();
    if (!failures.isEmpty()) {
        modelsDock_->raise();
        reportError(tr("A model failed"), failures.join(QLatin1Char('\n')), hintFor(failures.join(QLatin1Char('\n'))));
    }
    emit analysisFinished(true);
}

void MainWindow::onFailed(const QString& message, bool cancelled, const QStringList& modelErrors) {
    progress_->setVisible(false);
    lastStallMs_ = runner_->longestStallMs();
    updateActions();
    if (cancelled && rerunWhenDone_) {
        rerunWhenDone_ = false;
        if (!analysableCheckpoints().isEmpty() && hasText()) runAnalysis();
        emit analysisFinished(false);
        return;
    }
    if (cancelled) {
        showStatus(result_ ? tr("Analysis cancelled; still showing %1.").arg(shownTextName()) : tr("Analysis cancelled."));
    } else {
        recordModelErrors(modelErrors);
        // Plots of an earlier run would now pass for the result of this one.
        setResult(nullptr);
        showStatus(tr("Analysis failed: nothing to show (see Models for each model's error)."));
        modelsDock_->raise();
        reportError(tr("Analysis failed"), message, hintFor(message));
    }
    updateActions();
    updateTitle();
    emit analysisFinished(false);
}

QString MainWindow::hintFor(const QString& message) {
    const QString m = message.toLower();
    if (m.contains(QLatin1String("out of memory")))
        return tr("Switch Analysis ▸ Device to CPU, or lower Analysis ▸ Maximum Tokens, and run again (F5).");
    if (m.contains(QLatin1String("tokenizer")))
        return tr("All checkpoints of one analysis must share a tokenizer: clear them (File ▸ Clear Checkpoints) and open matching ones.");
    if (m.contains(QLatin1String("cuda")))
        return tr("Choose Analysis ▸ Device ▸ CPU (or Automatic) and run again (F5).");
    if (m.contains(QLatin1String("utf-8")) || m.contains(QLatin1String("binary")) || m.contains(QLatin1String("empty")))
        return tr("Open a UTF-8 text file (File ▸ Open Text…).");
    if (m.contains(QLatin1String("config")) || m.contains(QLatin1String("safetensors")) || m.contains(QLatin1String("checkpoint")))
        return tr("Check that the folder is a complete checkpoint (config.json and the weights), or open another one with "
                  "File ▸ Open Checkpoint… after File ▸ Clear Checkpoints.");
    return tr("Check the checkpoint folders and the text, then run again (Analysis ▸ Run, F5).");
}

// --- export and audit ----------------------------------------------------------------------

QStringList MainWindow::exportFigureSet(const QString& folder, const views::ExportOptions& options) {
    QStringList files;
    if (!result_) return files;
    if (!QDir().mkpath(folder))
        throw std::runtime_error("cannot create the folder " + folder.toStdString() + " (choose a folder you can write to)");
    const QDir dir(folder);
    // The live views, so the figures keep the user's choices (smoothing, compared models,
    // channel order, visible range); levels and timescales once per model with traces.
    for (views::AnalysisView* v : std::initializer_list<views::AnalysisView*>{textView_, bptView_, summaryView_})
        files << views::exportView(*v, dir.filePath(v->fileStem()), options);
    const int levelsModel = levelsView_->model();
    const int timescaleModel = timescaleView_->model();
    for (int m = 0; m < static_cast<int>(result_->models.size()); ++m) {
        if (result_->models[static_cast<size_t>(m)].levels.empty()) continue;
        levelsView_->setModel(m);
        files << views::exportView(*levelsView_, dir.filePath(levelsView_->fileStem()), options);
        timescaleView_->setModel(m);
        files << views::exportView(*timescaleView_, dir.filePath(timescaleView_->fileStem()), options);
    }
    levelsView_->setModel(levelsModel);
    timescaleView_->setModel(timescaleModel);
    return files;
}

void MainWindow::exportViewDialog(views::AnalysisView* view) {
    if (!result_) return;
    const QString folder = settings_->value(QStringLiteral("export/viewFolder"), QDir::homePath()).toString();
    ExportDialog dialog(false, QDir(folder).filePath(view->fileStem()), *settings_, this);
    if (dialog.exec() != QDialog::Accepted) return;
    dialog.remember(*settings_);
    QApplication::setOverrideCursor(Qt::WaitCursor);
    try {
        const QStringList files = views::exportView(*view, dialog.path(), dialog.options());
        QApplication::restoreOverrideCursor();
        showStatus(tr("Exported %n file(s): %1", nullptr, static_cast<int>(files.size())).arg(files.join(QStringLiteral(", "))));
    } catch (const std::exception& e) {
        QApplication::restoreOverrideCursor();
        reportError(tr("Export failed"), QString::fromUtf8(e.what()), tr("Choose another folder or fewer formats and export again."));
    }
}

void MainWindow::exportFigureSetDialog() {
    if (!result_) return;
    const QString folder = settings_->value(QStringLiteral("export/folder"), QDir::home().filePath(QStringLiteral("harmonic-figures"))).toString();
    ExportDialog dialog(true, folder, *settings_, this);
    if (dialog.exec() != QDialog::Accepted) return;
    dialog.remember(*settings_);
    QApplication::setOverrideCursor(Qt::WaitCursor);
    try {
        const QStringList files = exportFigureSet(dialog.path(), dialog.options());
        QApplication::restoreOverrideCursor();
        showStatus(tr("Wrote %n file(s) to %1", nullptr, static_cast<int>(files.size())).arg(dialog.path()));
    } catch (const std::exception& e) {
        QApplication::restoreOverrideCursor();
        reportError(tr("Export failed"), QString::fromUtf8(e.what()), tr("Choose another folder and export again."));
    }
}

void MainWindow::openCausalityAudit() {
    auto* dialog = new CausalityDialog(backend_, analysableCheckpoints(), text_, result_ ? result_->token_count() : 0,
                                       device_ == QLatin1String("auto") ? QStringLiteral("cpu") : device_, this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->show();
}

// --- dialogs ------------------------------------------------------------------------------

void MainWindow::openCheckpointDialog() {
    const QString start = settings_->value(QStringLiteral("dialogs/checkpointFolder"), QDir::homePath()).toString();
    const QString folder = QFileDialog::getExistingDirectory(this, tr("Open a checkpoint folder"), start);
    if (folder.isEmpty()) return;
    settings_->setValue(QStringLiteral("dialogs/checkpointFolder"), QFileInfo(folder).path());
    addCheckpoints({folder});
}

void MainWindow::openTextDialog() {
    const QString start = settings_->value(QStringLiteral("dialogs/textFolder"), QDir::homePath()).toString();
    const QString file = QFileDialog::getOpenFileName(this, tr("Open a text"), start, tr("Text files (*.txt *.md *.csv *.json *.*)"));
    if (file.isEmpty()) return;
    settings_->setValue(QStringLiteral("dialogs/textFolder"), QFileInfo(file).path());
    openTextFile(file);
}

void MainWindow::pasteText() {
    bool ok = false;
    const QString text = QInputDialog::getMultiLineText(this, tr("Paste Text"), tr("Text to analyse:"), QString(), &ok);
    if (!ok) return;
    if (text.trimmed().isEmpty()) {
        reportError(tr("Empty text"), tr("The pasted text is empty."), tr("Paste some text, or open a file with File ▸ Open Text…"));
        return;
    }
    setText(tr("pasted text"), text.toStdString());
}

void MainWindow::askMaxTokens() {
    bool ok = false;
    const int value = QInputDialog::getInt(this, tr("Maximum Tokens"), tr("Analyse at most this many tokens (0 = the whole text):"),
                                           static_cast<int>(std::min<qint64>(maxTokens_, std::numeric_limits<int>::max())), 0,
                                           std::numeric_limits<int>::max(), 1024, &ok);
    if (ok) setMaxTokens(value);
}

void MainWindow::fillRecentMenu(QMenu* menu, const QString& key, bool checkpoints) {
    menu->clear();
    const QStringList items = settings_->value(key).toStringList();
    for (const QString& item : items) {
        menu->addAction(item, this, [this, item, checkpoints] {
            if (checkpoints) addCheckpoints({item});
            else openTextFile(item);
        });
    }
    if (items.isEmpty()) menu->addAction(tr("(none)"))->setEnabled(false);
    else {
        menu->addSeparator();
        menu->addAction(tr("Clear List"), this, [this, key] { settings_->remove(key); });
    }
}

void MainWindow::rememberRecent(const QString& key, const QString& value) {
    QStringList items = settings_->value(key).toStringList();
    items.removeAll(value);
    items.prepend(value);
    while (items.size() > kMaxRecent) items.removeLast();
    settings_->setValue(key, items);
}

// --- drag and drop ------------------------------------------------------------------------

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
    if (event->mimeData()->hasUrls() || event->mimeData()->hasText()) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
    if (handleDrop(event->mimeData())) event->acceptProposedAction();
}

bool MainWindow::handleDrop(const QMimeData* mime) {
    if (!mime) return false;
    if (mime->hasUrls()) {
        QStringList folders;
        QString textFile;
        for (const QUrl& url : mime->urls()) {
            if (!url.isLocalFile()) continue;
            const QFileInfo info(url.toLocalFile());
            // A folder is a checkpoint, a file is the text.
            if (info.isDir()) folders << info.absoluteFilePath();
            else if (info.isFile()) textFile = info.absoluteFilePath();
        }
        const bool autoRun = autoRun_;
        autoRun_ = false;
        if (!folders.isEmpty()) addCheckpoints(folders);
        if (!textFile.isEmpty()) openTextFile(textFile);
        autoRun_ = autoRun;
        maybeAutoRun();
        return !folders.isEmpty() || !textFile.isEmpty();
    }
    if (mime->hasText() && !mime->text().trimmed().isEmpty()) {
        setText(tr("dropped text"), mime->text().toStdString());
        return true;
    }
    return false;
}

void MainWindow::closeEvent(QCloseEvent* event) {
    if (isAnalysing()) {
        // Stop the worker before the window (and the views it would feed) goes away.
        rerunWhenDone_ = false;
        runner_->cancel();
    }
    settings_->setValue(QStringLiteral("window/geometry"), saveGeometry());
    settings_->setValue(QStringLiteral("window/state"), saveState());
    QMainWindow::closeEvent(event);
}

// --- status -------------------------------------------------------------------------------

void MainWindow::updateActions() {
    const bool running = isAnalysing();
    runAction_->setEnabled(!running && !analysableCheckpoints().isEmpty() && hasText());
    cancelAction_->setEnabled(running);
    exportSetAction_->setEnabled(result_ != nullptr);
    exportViewMenu_->setEnabled(result_ != nullptr);
    auditAction_->setEnabled(!analysableCheckpoints().isEmpty() && hasText() && backend_.auditCausality != nullptr);
}

void MainWindow::updateTitle() {
    // The title names the text on screen, which differs from the loaded one after a cancel.
    QString title = tr("Harmonic Studio");
    const QString shown = shownTextName();
    if (!shown.isEmpty()) title = shown + QStringLiteral(" — ") + title;
    setWindowTitle(title);
    QStringList names;
    for (const ModelEntry& m : models_) names << QDir(m.path).dirName() + (m.state == ModelState::Failed ? QStringLiteral(" ✗") : QString());
    sessionLabel_->setText(tr("%1 · %2 · %3%4")
                               .arg(names.isEmpty() ? tr("no checkpoint") : names.join(QStringLiteral(", ")), device_, precision_,
                                    maxTokens_ > 0 ? tr(" · ≤ %1 tokens").arg(maxTokens_) : QString()));
}

void MainWindow::showStatus(const QString& message) { statusLabel_->setText(message); }

QString MainWindow::shownTextName() const { return result_ ? QString::fromStdString(result_->text_name) : textName_; }

QString MainWindow::statusText() const { return statusLabel_->text(); }

void MainWindow::reportError(const QString& title, const QString& message, const QString& hint) {
    emit errorReported(message + QStringLiteral("\n") + hint);
    if (quiet_) {
        std::fprintf(stderr, "harmonic-studio: %s: %s\n  %s\n", title.toLocal8Bit().constData(), message.toLocal8Bit().constData(),
                     hint.toLocal8Bit().constData());
        showStatus(title + QStringLiteral(": ") + message);
        return;
    }
    QMessageBox box(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
    box.setInformativeText(hint);
    box.exec();
}

bool MainWindow::saveScreenshot(const QString& path) {
    // Let queued replots and layouts run so the picture shows what a user would see.
    for (int i = 0; i < 5; ++i) QCoreApplication::processEvents();
    const QPixmap pixmap = grab();
    return !pixmap.isNull() && pixmap.save(path);
}

}  // namespace harmonic::studio

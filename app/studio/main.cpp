// harmonic-studio: the desktop tool. Binds the studio window to the model library (LibTorch)
// and handles the command line:
//   harmonic-studio [--checkpoint DIR ...] [--text FILE] [--device auto|cpu|cuda]
//                   [--precision fp32|bf16] [--max-tokens N] [--screenshot FILE.png] [--size WxH]
// With no checkpoint and no text it opens the bundled demo.
#include <QApplication>
#include <QCommandLineParser>
#include <QRegularExpression>
#include <QTimer>
#include <cstdio>

#include "app/studio/main_window.h"
#include "model/analysis.h"
#include "model/config.h"
#include "model/io.h"
#include "model/text.h"
#include "model/tokenizer.h"
#include "views/csv.h"

namespace {

harmonic::studio::StudioBackend modelBackend() {
    harmonic::studio::StudioBackend backend;
    backend.analyze = [](const std::vector<std::filesystem::path>& checkpoints, const std::string& text, const std::string& name,
                         const harmonic::AnalysisOptions& options, const harmonic::ProgressFn& progress,
                         const std::atomic<bool>* cancel) { return harmonic::analyze(checkpoints, text, name, options, progress, cancel); };
    backend.auditCausality = [](const std::filesystem::path& checkpoint, const std::string& text, int64_t position,
                                const std::string& device, int trials) {
        return harmonic::audit_causality(checkpoint, text, position, device, trials);
    };
    backend.readText = [](const std::filesystem::path& file) {
        // A FIFO without a writer would block the window in open(): only regular files are texts here.
        harmonic::require_regular_file(file);
        return harmonic::read_text_file(file);
    };
    backend.vocabulary = [](const std::filesystem::path& dir) -> std::function<QString(int32_t)> {
        const harmonic::ModelConfig config = harmonic::ModelConfig::load(dir / "config.json");
        std::shared_ptr<const harmonic::Tokenizer> tokenizer = harmonic::load_tokenizer(config.tokenizer, dir);
        return [tokenizer](int32_t id) {
            try {
                return harmonic::views::printableToken(tokenizer->token_bytes(id));
            } catch (const std::exception&) {
                return QStringLiteral("#%1").arg(id);
            }
        };
    };
    return backend;
}

int fail(const QString& message) {
    std::fprintf(stderr, "harmonic-studio: %s\n", message.toLocal8Bit().constData());
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("Harmonic"));
    QApplication::setApplicationName(QStringLiteral("Harmonic Studio"));
    QApplication::setApplicationVersion(QStringLiteral(HARMONIC_VERSION));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Analyse hierarchical state-space language models (Harmonic) against "
                                                    "Transformer and Mamba baselines. Without arguments it opens the bundled demo."));
    parser.addHelpOption();
    parser.addVersionOption();
    const QCommandLineOption checkpoint(QStringList{QStringLiteral("c"), QStringLiteral("checkpoint")},
                                        QStringLiteral("A checkpoint folder (repeat for several models)."), QStringLiteral("DIR"));
    const QCommandLineOption text(QStringList{QStringLiteral("t"), QStringLiteral("text")}, QStringLiteral("The text file to analyse."),
                                  QStringLiteral("FILE"));
    const QCommandLineOption device(QStringLiteral("device"), QStringLiteral("auto, cpu or cuda (default: last used)."), QStringLiteral("DEVICE"));
    const QCommandLineOption precision(QStringLiteral("precision"), QStringLiteral("fp32 or bf16 (default: last used)."),
                                       QStringLiteral("PRECISION"));
    const QCommandLineOption maxTokens(QStringLiteral("max-tokens"), QStringLiteral("Analyse at most N tokens (0: all)."), QStringLiteral("N"));
    const QCommandLineOption screenshot(QStringLiteral("screenshot"),
                                        QStringLiteral("Render the window to FILE.png once the analysis has finished, then exit "
                                                       "(at the size the window opens with, or --size)."),
                                        QStringLiteral("FILE.png"));
    const QCommandLineOption size(QStringLiteral("size"), QStringLiteral("Open the window at this size, e.g. 1600x1000 (default: most of the screen)."),
                                  QStringLiteral("WxH"));
    const QCommandLineOption settings(QStringLiteral("settings"), QStringLiteral("Use this INI file for settings."), QStringLiteral("FILE"));
    parser.addOptions({checkpoint, text, device, precision, maxTokens, screenshot, settings, size});
    parser.process(app);

    if (parser.isSet(device)) {
        const QString d = parser.value(device).toLower();
        if (d != QLatin1String("auto") && d != QLatin1String("cpu") && d != QLatin1String("cuda"))
            return fail(QStringLiteral("--device %1: use auto, cpu or cuda").arg(parser.value(device)));
    }
    if (parser.isSet(precision)) {
        const QString p = parser.value(precision).toLower();
        if (p != QLatin1String("fp32") && p != QLatin1String("bf16"))
            return fail(QStringLiteral("--precision %1: use fp32 or bf16").arg(parser.value(precision)));
    }
    qint64 tokenLimit = -1;
    if (parser.isSet(maxTokens)) {
        bool ok = false;
        tokenLimit = parser.value(maxTokens).toLongLong(&ok);
        if (!ok || tokenLimit < 0) return fail(QStringLiteral("--max-tokens %1: use a whole number >= 0").arg(parser.value(maxTokens)));
    }
    QSize windowSize;
    if (parser.isSet(size)) {
        const auto match = QRegularExpression(QStringLiteral("^(\\d{1,5})[xX×](\\d{1,5})$")).match(parser.value(size).trimmed());
        if (match.hasMatch()) windowSize = QSize(match.captured(1).toInt(), match.captured(2).toInt());
        if (!match.hasMatch() || windowSize.width() < 320 || windowSize.height() < 240)
            return fail(QStringLiteral("--size %1: use WIDTHxHEIGHT of at least 320x240, e.g. 1600x1000").arg(parser.value(size)));
    }
    const QString shot = parser.value(screenshot);
    if (!parser.positionalArguments().isEmpty())
        return fail(QStringLiteral("unexpected argument '%1' (use --checkpoint DIR and --text FILE)").arg(parser.positionalArguments().front()));

    harmonic::studio::MainWindow window(modelBackend(), parser.value(settings));
    if (parser.isSet(device)) window.setDevice(parser.value(device));
    if (parser.isSet(precision)) window.setPrecision(parser.value(precision));
    if (tokenLimit >= 0) window.setMaxTokens(tokenLimit);
    // Without --size the window keeps the size it chose for this screen (or the one it was left at).
    if (windowSize.isValid()) window.applyDefaultGeometry(windowSize);
    if (!shot.isEmpty()) window.setQuietErrors(true);  // unattended: no modal boxes
    window.show();

    int exitCode = 0;
    if (!shot.isEmpty()) {
        QObject::connect(&window, &harmonic::studio::MainWindow::analysisFinished, &window, [&](bool ok) {
            QTimer::singleShot(300, &window, [&, ok] {
                if (!window.saveScreenshot(shot)) {
                    std::fprintf(stderr, "harmonic-studio: cannot write the screenshot %s\n", shot.toLocal8Bit().constData());
                    exitCode = 1;
                } else if (!ok) {
                    exitCode = 1;
                }
                QApplication::quit();
            });
        });
    }

    const QStringList checkpoints = parser.values(checkpoint);
    const QString textFile = parser.value(text);
    bool started = false;
    if (checkpoints.isEmpty() && textFile.isEmpty()) {
        started = window.openDemo();  // says in the status bar when the demo is missing
    } else {
        window.setAutoRun(false);
        bool ok = checkpoints.isEmpty() || window.addCheckpoints(checkpoints);
        if (!textFile.isEmpty()) ok = window.openTextFile(textFile) && ok;
        window.setAutoRun(true);
        if (ok && !window.checkpoints().isEmpty() && window.hasText()) {
            window.runAnalysis();
            started = true;
        }
    }
    if (!shot.isEmpty() && !started) {
        // Nothing will finish: render what there is and report the failure.
        QTimer::singleShot(300, &window, [&] {
            window.saveScreenshot(shot);
            std::fprintf(stderr, "harmonic-studio: no analysis ran (%s)\n", window.statusText().toLocal8Bit().constData());
            exitCode = 1;
            QApplication::quit();
        });
    }
    const int rc = app.exec();
    return exitCode != 0 ? exitCode : rc;
}

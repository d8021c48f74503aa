#include "app/studio/causality_dialog.h"

#include <filesystem>

#include <QComboBox>
#include <QDialogButtonBox>
#include <QDir>
#include <QFormLayout>
#include <QLabel>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>
#include <exception>
#include <filesystem>

namespace harmonic::studio {

CausalityDialog::CausalityDialog(StudioBackend backend, const QStringList& checkpoints, std::shared_ptr<const std::string> text,
                                 qint64 tokenCount, const QString& device, QWidget* parent)
    : QDialog(parent), backend_(std::move(backend)), text_(std::move(text)), device_(device) {
    setWindowTitle(tr("Causality Audit"));
    auto* intro = new QLabel(tr("Perturbs every token after the chosen position (several random draws) and reports the "
                                "largest change of any prediction at or before it. A causal model changes nothing; "
                                "a leak means the model looks at the future."),
                             this);
    intro->setWordWrap(true);
    checkpoint_ = new QComboBox(this);
    for (const QString& c : checkpoints) checkpoint_->addItem(QDir(c).dirName(), c);
    position_ = new QSpinBox(this);
    const int maxPosition = static_cast<int>(std::clamp<qint64>(tokenCount > 1 ? tokenCount - 2 : 1 << 20, 0, 1 << 30));
    position_->setRange(0, std::max(0, maxPosition));
    position_->setValue(std::min(64, maxPosition));
    position_->setToolTip(tr("Tokens after this position are perturbed"));
    trials_ = new QSpinBox(this);
    trials_->setRange(1, 32);
    trials_->setValue(3);
    auto* form = new QFormLayout;
    form->addRow(tr("Checkpoint:"), checkpoint_);
    form->addRow(tr("Position:"), position_);
    form->addRow(tr("Random draws:"), trials_);
    form->addRow(tr("Device:"), new QLabel(device_, this));
    report_ = new QLabel(tr("Not run yet."), this);
    report_->setWordWrap(true);
    report_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    report_->setMinimumHeight(60);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, this);
    run_ = buttons->addButton(tr("Run Audit"), QDialogButtonBox::ActionRole);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(intro);
    layout->addLayout(form);
    layout->addWidget(report_, 1);
    layout->addWidget(buttons);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(run_, &QPushButton::clicked, this, &CausalityDialog::run);
    const bool ready = checkpoint_->count() > 0 && text_ && !text_->empty() && backend_.auditCausality;
    run_->setEnabled(ready);
    if (!ready)
        report_->setText(checkpoint_->count() == 0 ? tr("Open a checkpoint first (File ▸ Open Checkpoint…).")
                                                   : tr("Open a text first (File ▸ Open Text…): the audit perturbs a real text."));
    resize(480, 320);
}

CausalityDialog::~CausalityDialog() {
    if (thread_) {
        thread_->wait();
        delete thread_.data();
    }
}

QString CausalityDialog::describe(const CausalityReport& r) {
    const QString model = QString::fromStdString(std::filesystem::path(r.checkpoint).filename().string());
    const QString noise = r.threshold > 0
                              ? tr("changes up to %1 count as noise: repeating the same forward moved logits by %2")
                                    .arg(r.threshold, 0, 'g', 3)
                                    .arg(r.noise, 0, 'g', 3)
                              : tr("repeated forwards are bit-identical, so any change counts");
    if (r.causal)
        return tr("<b>%1: causal.</b> No prediction at positions ≤ %2 moved when the %3 tokens after it were perturbed "
                  "(%4 draws; largest change %5; %6).")
            .arg(model.toHtmlEscaped())
            .arg(r.position)
            .arg(std::max<int64_t>(0, r.tokens - r.position - 1))
            .arg(r.trials)
            .arg(r.max_abs_change, 0, 'g', 3)
            .arg(noise);
    return tr("<b>%1: <font color='#b2182b'>leak.</font></b> Perturbing tokens after position %2 changed earlier "
              "predictions by up to %3 (logits); the first position that moved is %4 (%5). This model can see the "
              "future: its bpt is not a valid compression measure.")
        .arg(model.toHtmlEscaped())
        .arg(r.position)
        .arg(r.max_abs_change, 0, 'g', 3)
        .arg(r.first_leaking_position)
        .arg(noise);
}

QString CausalityDialog::reportText() const { return report_->text(); }

void CausalityDialog::run() {
    if (thread_ || !backend_.auditCausality) return;
    const std::filesystem::path checkpoint = checkpoint_->currentData().toString().toStdString();
    const int64_t position = position_->value();
    const int trials = trials_->value();
    const std::string device = device_.toStdString();
    auto audit = backend_.auditCausality;
    auto text = text_;
    run_->setEnabled(false);
    report_->setText(tr("Running the audit on %1…").arg(checkpoint_->currentText()));
    QPointer<CausalityDialog> self(this);
    thread_ = QThread::create([self, audit, checkpoint, text, position, device, trials] {
        QString message;
        bool causal = false;
        try {
            const CausalityReport report = audit(checkpoint, *text, position, device, trials);
            causal = report.causal;
            message = describe(report);
        } catch (const std::exception& e) {
            message = tr("The audit failed: %1").arg(QString::fromUtf8(e.what()).toHtmlEscaped());
        }
        QMetaObject::invokeMethod(self.data(), [self, message, causal] {
            if (!self) return;
            self->thread_->wait();
            self->thread_->deleteLater();
            self->thread_ = nullptr;
            self->report_->setText(message);
            self->run_->setEnabled(true);
            emit self->auditFinished(causal);
        }, Qt::QueuedConnection);
    });
    thread_->start();
}

}  // namespace harmonic::studio

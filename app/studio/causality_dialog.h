// The causality audit: perturb every token after a position and check whether any earlier
// prediction moves. A causal model changes nothing; a leak names the first position that moved.
#pragma once

#include <QDialog>
#include <QPointer>
#include <QThread>
#include <memory>
#include <string>

#include "app/studio/studio_backend.h"

class QComboBox;
class QLabel;
class QPushButton;
class QSpinBox;

namespace harmonic::studio {

class CausalityDialog : public QDialog {
    Q_OBJECT
public:
    CausalityDialog(StudioBackend backend, const QStringList& checkpoints, std::shared_ptr<const std::string> text,
                    qint64 tokenCount, const QString& device, QWidget* parent = nullptr);
    ~CausalityDialog() override;

    // Runs the audit on a worker thread; the report appears in the dialog.
    void run();
    bool isRunning() const { return thread_ != nullptr; }
    QString reportText() const;

    static QString describe(const CausalityReport& report);

signals:
    void auditFinished(bool causal);

private:
    StudioBackend backend_;
    std::shared_ptr<const std::string> text_;
    QString device_;
    QComboBox* checkpoint_ = nullptr;
    QSpinBox* position_ = nullptr;
    QSpinBox* trials_ = nullptr;
    QPushButton* run_ = nullptr;
    QLabel* report_ = nullptr;
    QPointer<QThread> thread_;
};

}  // namespace harmonic::studio

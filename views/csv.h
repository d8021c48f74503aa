// A small CSV writer (RFC 4180 quoting) that fails loudly: exporters must never leave a
// half-written file behind silently.
#pragma once

#include <QFile>
#include <QString>
#include <QStringList>
#include <QTextStream>

#include <vector>

namespace harmonic::views {

class CsvWriter {
public:
    // Throws std::runtime_error when the file cannot be created.
    explicit CsvWriter(const QString& path);
    ~CsvWriter();
    CsvWriter(const CsvWriter&) = delete;
    CsvWriter& operator=(const CsvWriter&) = delete;

    void row(const QStringList& cells);
    // `leading` cells, then `values` written as number() writes them (digits significant digits,
    // NaN empty) without a QString per value: a heatmap's CSV has millions of cells.
    void row(const QStringList& leading, const std::vector<double>& values, int digits = 9);
    // Throws when anything failed to reach the disk (full disk, removed folder).
    void close();

    // Floats keep 9 significant digits, so a value read back equals the float that was drawn;
    // NaN becomes an empty cell.
    static QString number(double value, int digits = 9);
    static QString integer(qint64 value) { return QString::number(value); }
    static QString quote(const QString& cell);

private:
    QString path_;
    QFile file_;
    QTextStream out_;
};

// Makes a token's bytes printable in one CSV cell or one label: control characters become
// escapes (\n, \t, \x01).
QString printableToken(const std::string& bytes);

}  // namespace harmonic::views

#include "views/csv.h"

#include <charconv>
#include <cmath>
#include <string>
#include <stdexcept>

namespace harmonic::views {

CsvWriter::CsvWriter(const QString& path) : path_(path), file_(path) {
    if (!file_.open(QIODevice::WriteOnly | QIODevice::Truncate | QIODevice::Text))
        throw std::runtime_error("cannot write " + path.toStdString() + ": " + file_.errorString().toStdString() +
                                 " (choose a folder you can write to)");
    out_.setDevice(&file_);
    out_.setEncoding(QStringConverter::Utf8);
}

CsvWriter::~CsvWriter() {
    if (file_.isOpen()) {
        out_.flush();
        file_.close();
    }
}

void CsvWriter::row(const QStringList& cells) {
    bool first = true;
    for (const QString& cell : cells) {
        if (!first) out_ << ',';
        out_ << quote(cell);
        first = false;
    }
    out_ << '\n';
}

void CsvWriter::row(const QStringList& leading, const std::vector<double>& values, int digits) {
    bool first = true;
    for (const QString& cell : leading) {
        if (!first) out_ << ',';
        out_ << quote(cell);
        first = false;
    }
    std::string line;
    line.reserve(values.size() * 16 + 1);
    char buf[64];
    for (double v : values) {
        if (!first) line += ',';
        first = false;
        if (std::isnan(v)) continue;
        // %g with `digits` significant digits: what QString::number(v, 'g', digits) writes,
        // which writes −0 as "0".
        const auto r = std::to_chars(buf, buf + sizeof buf, v == 0.0 ? 0.0 : v, std::chars_format::general, digits);
        line.append(buf, r.ptr);
    }
    line += '\n';
    out_ << QLatin1StringView(line.data(), static_cast<qsizetype>(line.size()));
}

void CsvWriter::close() {
    out_.flush();
    const bool ok = out_.status() == QTextStream::Ok && file_.error() == QFileDevice::NoError;
    const QString error = file_.errorString();
    file_.close();
    if (!ok) throw std::runtime_error("writing " + path_.toStdString() + " failed: " + error.toStdString());
}

QString CsvWriter::number(double value, int digits) {
    if (std::isnan(value)) return {};
    return QString::number(value, 'g', digits);
}

QString CsvWriter::quote(const QString& cell) {
    const bool needs = cell.contains(QLatin1Char(',')) || cell.contains(QLatin1Char('"')) ||
                       cell.contains(QLatin1Char('\n')) || cell.contains(QLatin1Char('\r')) ||
                       cell.startsWith(QLatin1Char(' ')) || cell.endsWith(QLatin1Char(' '));
    if (!needs) return cell;
    QString q = cell;
    q.replace(QLatin1Char('"'), QLatin1String("\"\""));
    return QLatin1Char('"') + q + QLatin1Char('"');
}

QString printableToken(const std::string& bytes) {
    QString decoded = QString::fromUtf8(bytes.data(), static_cast<qsizetype>(bytes.size()));
    QString out;
    out.reserve(decoded.size());
    for (QChar c : decoded) {
        const ushort u = c.unicode();
        if (u == '\n') out += QLatin1String("\\n");
        else if (u == '\r') out += QLatin1String("\\r");
        else if (u == '\t') out += QLatin1String("\\t");
        else if (u < 0x20 || u == 0x7F) out += QStringLiteral("\\x%1").arg(u, 2, 16, QLatin1Char('0'));
        else out += c;
    }
    // A lone byte of a multi-byte character decodes to U+FFFD; show the byte instead.
    if (bytes.size() == 1 && static_cast<unsigned char>(bytes[0]) >= 0x80)
        return QStringLiteral("\\x%1").arg(static_cast<unsigned char>(bytes[0]), 2, 16, QLatin1Char('0'));
    return out;
}

}  // namespace harmonic::views

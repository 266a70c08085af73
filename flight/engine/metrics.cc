#include "flight/engine/metrics.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "flight/base/strings.h"

namespace flight::engine {
namespace {

void append_escaped(std::string* out, std::string_view s) {
  // A plain loop: find_first_of with a three-character set calls memchr once
  // per character of `s` (a tasks.csv row has six text cells).
  const bool plain =
      std::none_of(s.begin(), s.end(), [](char c) { return c == ',' || c == '"' || c == '\n'; });
  if (plain) {
    out->append(s);
    return;
  }
  *out += '"';
  for (char c : s) {
    if (c == '"')
      *out += "\"\"";
    else if (c == '\n')
      *out += ' ';
    else
      *out += c;
  }
  *out += '"';
}

constexpr size_t kCsvBuffer = 64 << 10;

// Integers in decimal, doubles in their shortest round-trip form (csv_number).
template <typename T>
void append_number(std::string* out, T v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, res.ptr);
}

}  // namespace

std::string csv_number(double v) {
  // The shortest text that reads back to exactly v (0.5782, not
  // 0.57820000000000005).
  std::string out;
  append_number(&out, v);
  return out;
}

void CsvLog::cell(std::string_view text) {
  separate();
  append_escaped(&buffer_, text);
}

void CsvLog::cell(int64_t v) {
  separate();
  append_number(&buffer_, v);
}

void CsvLog::cell(uint64_t v) {
  separate();
  append_number(&buffer_, v);
}

void CsvLog::cell(double v) {
  separate();
  append_number(&buffer_, v);
}

void CsvLog::end_row(bool flush) {
  buffer_ += '\n';
  row_open_ = false;
  if (flush) {
    this->flush();
  } else if (buffer_.size() >= kCsvBuffer) {
    out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
    buffer_.clear();
  }
}

void CsvLog::flush() {
  if (!buffer_.empty() && out_.is_open()) {
    out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  }
  buffer_.clear();
  out_.flush();
}

void CsvLog::close() {
  if (!out_.is_open()) return;
  flush();
  out_.close();
}

Status CsvLog::open(const std::string& path, const std::vector<std::string>& header) {
  bool fresh = !std::filesystem::exists(path) || std::filesystem::file_size(path) == 0;
  out_.open(path, std::ios::app);
  if (!out_) return unavailable("cannot open '" + path + "' for writing");
  if (fresh) write(header);
  return Status::ok();
}

void CsvLog::write(const std::vector<std::string>& cells, bool flush) {
  for (const auto& c : cells) cell(c);
  end_row(flush);
}

std::vector<std::string> round_header(size_t tiers) {
  std::vector<std::string> h = {"round",
                                "start_s",
                                "end_s",
                                "seconds",
                                "test_accuracy",
                                "test_loss",
                                "train_loss",
                                "selected",
                                "returned",
                                "stragglers",
                                "failed",
                                "attempts",
                                "bytes_put",
                                "bytes_fetched",
                                "coordinator_ingress",
                                "train_seconds_max",
                                "busy_seconds",
                                "eval_seconds",
                                "epsilon"};
  for (size_t t = 1; t < tiers; ++t) h.push_back("bytes_up_tier" + std::to_string(t));
  return h;
}

std::vector<std::string> round_cells(const RoundRow& r, size_t tiers) {
  std::vector<std::string> c = {std::to_string(r.round),
                                csv_number(r.start),
                                csv_number(r.end),
                                csv_number(r.end - r.start),
                                r.test_accuracy < 0 ? "" : csv_number(r.test_accuracy),
                                r.test_loss < 0 ? "" : csv_number(r.test_loss),
                                csv_number(r.train_loss),
                                std::to_string(r.selected),
                                std::to_string(r.returned),
                                std::to_string(r.stragglers),
                                std::to_string(r.failed),
                                std::to_string(r.attempts),
                                std::to_string(r.bytes_put),
                                std::to_string(r.bytes_fetched),
                                std::to_string(r.coordinator_ingress),
                                csv_number(r.train_seconds_max),
                                csv_number(r.busy_seconds),
                                csv_number(r.eval_seconds),
                                r.epsilon < 0 ? "" : csv_number(r.epsilon)};
  for (size_t t = 1; t < tiers; ++t) {
    c.push_back(std::to_string(t < r.bytes_up_by_tier.size() ? r.bytes_up_by_tier[t] : 0));
  }
  return c;
}

std::vector<std::string> task_header() {
  return {"round",         "task_id",    "node",           "parent",        "kind",
          "endpoint",      "tier",       "status",         "submitted_s",   "started_s",
          "finished_s",    "train_loss", "train_accuracy", "train_seconds", "samples",
          "bytes_fetched", "bytes_put",  "error"};
}

void write_task(CsvLog& csv, const TaskRow& t) {
  csv.cell(t.round);
  csv.cell(t.task_id);
  csv.cell(t.node);
  csv.cell(t.parent);
  csv.cell(t.kind);
  csv.cell(t.endpoint);
  csv.cell(t.tier);
  csv.cell(t.status);
  csv.cell(t.submitted);
  csv.cell(t.started);
  csv.cell(t.finished);
  csv.cell(t.train_loss);
  csv.cell(t.train_accuracy);
  csv.cell(t.train_seconds);
  csv.cell(t.samples);
  csv.cell(t.bytes_fetched);
  csv.cell(t.bytes_put);
  csv.cell(t.error);
  csv.end_row();
}

Status truncate_csv_rounds(const std::string& path, int64_t last_round) {
  if (!std::filesystem::exists(path)) return Status::ok();
  std::ifstream in(path);
  std::string line, kept;
  bool header = true;
  while (std::getline(in, line)) {
    if (header) {
      kept += line + "\n";
      header = false;
      continue;
    }
    auto comma = line.find(',');
    try {
      if (std::stoll(line.substr(0, comma)) <= last_round) kept += line + "\n";
    } catch (const std::exception&) {
      // A torn last line from a killed run: drop it.
    }
  }
  in.close();
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kept;
    if (!out) return unavailable("cannot write '" + tmp + "'");
  }
  std::filesystem::rename(tmp, path);
  return Status::ok();
}

StatusOr<std::vector<RoundRow>> read_rounds_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found("cannot open '" + path + "'");
  std::string line;
  std::vector<RoundRow> rows;
  if (!std::getline(in, line)) return rows;
  while (std::getline(in, line)) {
    auto cells = split(line, ',');
    if (cells.size() < 7) continue;
    RoundRow r;
    try {
      r.round = std::stoll(cells[0]);
      r.start = std::stod(cells[1]);
      r.end = std::stod(cells[2]);
      r.test_accuracy = cells[4].empty() ? -1 : std::stod(cells[4]);
      r.test_loss = cells[5].empty() ? -1 : std::stod(cells[5]);
      if (cells.size() >= 19) {
        r.train_loss = std::stod(cells[6]);
        r.selected = std::stoll(cells[7]);
        r.returned = std::stoll(cells[8]);
        r.stragglers = std::stoll(cells[9]);
        r.failed = std::stoll(cells[10]);
        r.attempts = std::stoll(cells[11]);
        r.bytes_put = std::stoull(cells[12]);
        r.bytes_fetched = std::stoull(cells[13]);
        r.coordinator_ingress = std::stoull(cells[14]);
        r.train_seconds_max = std::stod(cells[15]);
        r.busy_seconds = std::stod(cells[16]);
        r.eval_seconds = std::stod(cells[17]);
        r.epsilon = cells[18].empty() ? -1 : std::stod(cells[18]);
        for (size_t t = 19; t < cells.size(); ++t) {
          if (r.bytes_up_by_tier.empty()) r.bytes_up_by_tier.push_back(0);
          r.bytes_up_by_tier.push_back(std::stoull(cells[t]));
        }
      }
    } catch (const std::exception&) {
      continue;
    }
    rows.push_back(r);
  }
  return rows;
}

Status write_accuracy_svg(const std::string& path, const std::vector<RoundRow>& all_rows,
                          const std::string& title) {
  std::vector<RoundRow> rows;
  for (const auto& r : all_rows) {
    if (r.test_accuracy >= 0) rows.push_back(r);
  }
  const double w = 900, h = 380, pad_l = 60, pad_r = 20, pad_t = 40, pad_b = 50, gap = 60;
  const double panel_w = (w - pad_l - pad_r - gap) / 2, panel_h = h - pad_t - pad_b;
  double max_round = 1, max_time = 1e-9;
  for (const auto& r : rows) {
    max_round = std::max(max_round, static_cast<double>(r.round));
    max_time = std::max(max_time, r.end);
  }
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w << "' height='" << h
    << "' font-family='sans-serif' font-size='12'>\n"
    << "<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << w / 2 << "' y='22' text-anchor='middle' font-size='15'>" << title
    << " — test accuracy</text>\n";
  auto label = [](double v) {  // axis labels: a few digits
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    return std::string(buf);
  };
  auto panel = [&](double x0, const char* xlabel, double xmax, bool by_time) {
    s << "<rect x='" << x0 << "' y='" << pad_t << "' width='" << panel_w << "' height='" << panel_h
      << "' fill='none' stroke='#444'/>\n";
    for (int i = 0; i <= 5; ++i) {
      double y = pad_t + panel_h - panel_h * i / 5.0;
      s << "<line x1='" << x0 << "' x2='" << x0 + panel_w << "' y1='" << y << "' y2='" << y
        << "' stroke='#ddd'/><text x='" << x0 - 6 << "' y='" << y + 4 << "' text-anchor='end'>"
        << label(i / 5.0) << "</text>\n";
      double x = x0 + panel_w * i / 5.0;
      s << "<text x='" << x << "' y='" << pad_t + panel_h + 16 << "' text-anchor='middle'>"
        << label(xmax * i / 5.0) << "</text>\n";
    }
    s << "<text x='" << x0 + panel_w / 2 << "' y='" << h - 12 << "' text-anchor='middle'>" << xlabel
      << "</text>\n<polyline fill='none' stroke='#1f77b4' stroke-width='2' points='";
    for (const auto& r : rows) {
      double xv = by_time ? r.end : static_cast<double>(r.round);
      s << x0 + panel_w * xv / xmax << "," << pad_t + panel_h - panel_h * r.test_accuracy << " ";
    }
    s << "'/>\n";
    for (const auto& r : rows) {
      double xv = by_time ? r.end : static_cast<double>(r.round);
      s << "<circle r='2.5' fill='#1f77b4' cx='" << x0 + panel_w * xv / xmax << "' cy='"
        << pad_t + panel_h - panel_h * r.test_accuracy << "'/>\n";
    }
  };
  panel(pad_l, "round", max_round, false);
  panel(pad_l + panel_w + gap, "wall time (s)", max_time, true);
  s << "</svg>\n";
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << s.str();
    if (!out) return unavailable("cannot write '" + tmp + "'");
  }
  std::filesystem::rename(tmp, path);
  return Status::ok();
}

}  // namespace flight::engine

// Run outputs: rounds.csv, tasks.csv and the accuracy plot. Rows are plain
// structs; writers append and flush per row so a killed run keeps what it did.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "flight/base/status.h"

namespace flight::engine {

struct RoundRow {
  int64_t round = 0;
  double start = 0, end = 0;                  // seconds since the run started
  double test_accuracy = -1, test_loss = -1;  // -1 when not evaluated this round
  double train_loss = 0;                      // sample-weighted mean over returned workers
  int64_t selected = 0, returned = 0, stragglers = 0, failed = 0;
  int64_t attempts = 1;  // >1 when the round was retried
  uint64_t bytes_put = 0, bytes_fetched = 0;
  uint64_t coordinator_ingress = 0;        // bytes the coordinator fetched from its children
  std::vector<uint64_t> bytes_up_by_tier;  // bytes put by nodes of tier t (index t; 0 = root)
  double train_seconds_max = 0;            // longest worker's training time
  double busy_seconds = 0;                 // sum of task run times (all tasks)
  double eval_seconds = 0;                 // evaluating the global model
  double epsilon = -1;                     // privacy.dp: epsilon at delta so far; -1 without DP
};

struct TaskRow {
  int64_t round = 0;
  std::string task_id, node, parent, kind, endpoint, status, error;
  int64_t tier = 0;
  double submitted = 0, started = 0, finished = 0;  // seconds since the run started
  double train_loss = 0, train_accuracy = 0, train_seconds = 0;
  int64_t samples = 0;
  uint64_t bytes_fetched = 0, bytes_put = 0;
};

// Rows go into a buffer that reaches the file at flush(), close(), the
// destructor, or every 64 KiB: a 10,000-task round's tasks.csv is a few
// writes, not a stream insertion per cell.
class CsvLog {
 public:
  CsvLog() = default;
  CsvLog(const CsvLog&) = delete;
  CsvLog& operator=(const CsvLog&) = delete;
  ~CsvLog() { close(); }

  // Opens `path` for appending; writes `header` when the file is new or empty.
  Status open(const std::string& path, const std::vector<std::string>& header);
  // flush = false batches rows (call flush() after the batch).
  void write(const std::vector<std::string>& cells, bool flush = true);
  // One row cell by cell (escaped as write() does), then end_row().
  void cell(std::string_view text);
  void cell(int64_t v);
  void cell(uint64_t v);
  void cell(double v);  // csv_number's form
  void end_row(bool flush = false);
  void flush();
  void close();

 private:
  void separate() {
    if (row_open_) buffer_ += ',';
    row_open_ = true;
  }
  std::ofstream out_;
  std::string buffer_;
  bool row_open_ = false;
};

// A number as CSV cells write it: its shortest round-trip form.
std::string csv_number(double v);

std::vector<std::string> round_header(size_t tiers);
std::vector<std::string> round_cells(const RoundRow& r, size_t tiers);
std::vector<std::string> task_header();
// One tasks.csv row, in task_header()'s columns.
void write_task(CsvLog& csv, const TaskRow& t);

// Keeps the header and the rows whose first column (round) is <= `last_round`;
// used by --resume so that rows from after the checkpoint are not duplicated.
Status truncate_csv_rounds(const std::string& path, int64_t last_round);

// accuracy.svg: test accuracy against round (left) and against time (right).
Status write_accuracy_svg(const std::string& path, const std::vector<RoundRow>& rows,
                          const std::string& title);

// Reads rounds.csv back (for resume and plots).
StatusOr<std::vector<RoundRow>> read_rounds_csv(const std::string& path);

}  // namespace flight::engine

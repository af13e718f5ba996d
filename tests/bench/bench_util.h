// Baselines and small helpers shared by the benchmarks: every benchmark prints its figure next to
// what raw SQLite does on the same disk in the same run.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace depot::bench {

// Raw SQLite (WAL, synchronous=FULL): one single-row INSERT per durable transaction, for
// `seconds`; returns commits per second.
double RawSingleCommits(const std::string& path, double seconds);
// Raw SQLite: batches of 1000 INSERTs per durable transaction; returns rows per second.
double RawBatchedRows(const std::string& path, double seconds);

// CPU seconds (user + system) used so far by process pid, from /proc; -1 when unknown.
double ProcessCpuSeconds(pid_t pid);

// The p-th percentile (0..100) of the samples (reorders them); 0 when empty.
double Percentile(std::vector<double>& samples, double p);

}  // namespace depot::bench

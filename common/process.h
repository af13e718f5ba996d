// What every Depot executable's main() does around its servers: termination signals and the
// port file that tests and scripts read.
#pragma once

#include <string>

namespace depot {

// Blocks SIGINT and SIGTERM in this thread (call before starting any thread, so every thread
// inherits the mask) and ignores SIGPIPE. WaitForTermination() then receives them.
void BlockTerminationSignals();
// Waits for SIGINT or SIGTERM (after BlockTerminationSignals) and returns its number.
int WaitForTermination();

// Writes content to path atomically (temporary file, then rename): a reader never sees a
// partial file. False on any I/O error.
bool WriteFileAtomically(const std::string& path, const std::string& content);

}  // namespace depot

// Cycle counts at the node (docs/OPERATIONS.md "Cycle counts", SYNC.md invariant 6).
//
// A count task covers a SKU (all its bins), a bin (all SKUs in it) or one SKU in one bin; its
// lines are the (sku, bin, lot) balances when it is created. Starting a task records the ledger's
// last movement seq on every open line. Submitting a counted quantity computes
//   expected = on hand at start_seq = on hand now - net movements of (sku, bin, lot) after start_seq
//   adjustment = counted - expected
// so movements after the start still apply (the floor never freezes) and, after posting,
//   on hand = counted + net movements after start_seq.
// A variance within the task's tolerance posts at once; one outside waits for a supervisor
// (approve posts with the same rule, reject reopens the line for a blind recount). Posting is a
// normal ADJUSTMENT with reason "count" through the ledger's own stock path (LedgerTx::Stock), so
// balances, ATP, serial rules, the movement event and the selling-rights loss handling are those
// of every adjustment; each posted line also emits a CountResult event for central's KPI.
//
// Like node/fulfilment.h this module has no transaction of its own: the ledger calls it inside
// its write transaction for the count members of v1::Operation (group commit and request_id
// idempotency come from there). Nothing is written when an operation fails.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "depot/v1/node_api.pb.h"
#include "node/fulfilment.h"
#include "node/ledger.h"
#include "node/stmt_cache.h"

namespace depot::node::counts {

// Ledger schema migration for count_tasks and count_lines.
extern const char* const kSchema;

bool IsCountOp(const v1::Operation& op);
// Applies a count member of op (count_create, count_start, count_submit, count_review,
// count_generate) and fills result->count (or ->count_generation) with the full (supervisor)
// view. Errors: InvalidArgument (bad request, a line not in the task, negative count),
// NotFound (unknown task, SKU or bin), FailedPrecondition (a count already open on the
// location, task already done, line not started or not awaiting approval), PermissionDenied
// (the counter approving or rejecting their own count).
absl::Status Apply(LedgerTx& tx, const CountTolerance& defaults, const v1::Operation& op,
                   v1::OperationResult* result);

// Pure rules (unit-tested directly).
// |variance| <= units, or |variance| * 100 <= percent * |expected|.
bool WithinTolerance(int64_t variance, int64_t expected, int64_t units, int64_t percent);
// ABC classes by volume, highest first: a SKU is A while the volume before it is below
// a_share% of the total, B while below (a_share + b_share)%, else C; zero volume is C.
std::map<std::string, char> ClassifyAbc(const std::map<std::string, int64_t>& units_out,
                                        uint32_t a_share_percent, uint32_t b_share_percent);
// The counter's (blind) view: withholds expected, variance and tolerance verdicts.
void Blind(v1::CountTask* task);

// Reads (any connection). List is newest first; status unspecified = all; limit 1..10000.
absl::StatusOr<v1::CountsResponse> List(StmtCache& db, v1::CountStatus status, uint32_t limit);
absl::StatusOr<v1::CountTask> Get(StmtCache& db, const std::string& count_id);
// Inventory accuracy over lines posted at or after since_hlc (0 = all time).
absl::StatusOr<v1::CountKpi> Kpi(StmtCache& db, uint64_t since_hlc);
// Newest HLC a count change used (observed at open so the clock increases across restarts).
uint64_t LastHlc(StmtCache& db);

}  // namespace depot::node::counts

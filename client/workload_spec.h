// The workload spec of tlmctl's command line: "OP NAME=INT..." plus an
// epilogue list, as a tlm.v1.Workload.
//
// Only the syntax is checked here. Whether the operator exists, which
// parameters it takes and which values are legal is the server's business:
// "conv9d K=0" parses and is sent as it is, and the server names the field
// it rejects. This keeps the parser independent of the operators the tensor
// program language defines.
#ifndef TLMD_CLIENT_WORKLOAD_SPEC_H_
#define TLMD_CLIENT_WORKLOAD_SPEC_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tlm/v1/program.pb.h"

namespace tlm::client {

// `words` is the operator name followed by NAME=INT parameters (64-bit
// signed values), in order; a word may hold several whitespace-separated
// items, so "dense M=128 N=768 K=3072" as one word works too. `epilogue` is
// the comma-separated --epilogue value ("" or "none": no epilogue).
// INVALID_ARGUMENT quotes the argument that cannot be expressed as a
// Workload: a missing operator, an item without '=' or without a name, a
// value that is not an integer, an empty epilogue entry.
absl::StatusOr<tlm::v1::Workload> ParseWorkloadSpec(const std::vector<std::string>& words,
                                                    absl::string_view epilogue);

// The --dtype value: "float32" or "float16"; "" is DTYPE_UNSPECIFIED (the
// server's default, float32). INVALID_ARGUMENT naming the known types
// otherwise.
absl::StatusOr<tlm::v1::DType> ParseDTypeFlag(absl::string_view dtype);

// The comma-separated epilogue list alone; surrounding spaces are ignored.
absl::StatusOr<std::vector<std::string>> ParseEpilogueList(absl::string_view epilogue);

}  // namespace tlm::client

#endif  // TLMD_CLIENT_WORKLOAD_SPEC_H_

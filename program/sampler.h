// Random programs: each decision drawn uniformly from the values its slot
// allows after the decisions before it. The pretraining corpus generator and
// the random-search baseline.
#ifndef TLMD_PROGRAM_SAMPLER_H_
#define TLMD_PROGRAM_SAMPLER_H_

#include <random>

#include "program/program.h"

namespace tlm::program {

// A valid program of the sketch's workload and target.
Program SampleProgram(const Sketch& sketch, std::mt19937_64& rng);

}  // namespace tlm::program

#endif  // TLMD_PROGRAM_SAMPLER_H_

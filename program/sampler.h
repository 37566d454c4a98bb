// Random programs: the pretraining corpus generator and the random-search
// baseline. Decisions are drawn slot by slot from the values each slot
// allows after the decisions before it, so every program is valid. Tile
// factors are weighted so that each axis's split is uniform over its
// ordered factorizations (as Ansor samples tile sizes); other decisions are
// uniform over their allowed values.
#ifndef TLMD_PROGRAM_SAMPLER_H_
#define TLMD_PROGRAM_SAMPLER_H_

#include <cstdint>
#include <random>

#include "program/program.h"

namespace tlm::program {

// A valid program of the sketch's workload and target.
Program SampleProgram(const Sketch& sketch, std::mt19937_64& rng);

// Ordered factorizations of n into `factors` positive factors.
double OrderedFactorizations(int64_t n, int factors);

}  // namespace tlm::program

#endif  // TLMD_PROGRAM_SAMPLER_H_

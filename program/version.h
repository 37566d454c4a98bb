// Version of tlmd, tlm-worker and tlmctl, reported over the API.
#ifndef TLMD_PROGRAM_VERSION_H_
#define TLMD_PROGRAM_VERSION_H_

namespace tlm {

inline constexpr char kVersion[] = "0.1.0";

}  // namespace tlm

#endif  // TLMD_PROGRAM_VERSION_H_

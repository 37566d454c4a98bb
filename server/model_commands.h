// tlmd's model commands: pretrain, sft, inspect, generate.
#ifndef TLMD_SERVER_MODEL_COMMANDS_H_
#define TLMD_SERVER_MODEL_COMMANDS_H_

#include <string>
#include <vector>

namespace tlm::server {

// True for the first word of a model command.
bool IsModelCommand(const std::string& word);

// Runs `words` (command first, then its positional arguments) with the
// flags already parsed. Returns the exit code: 0 done, 1 failed, 2 usage.
int RunModelCommand(const std::vector<std::string>& words);

// One paragraph per command, for --help.
extern const char kModelCommandsUsage[];

}  // namespace tlm::server

#endif  // TLMD_SERVER_MODEL_COMMANDS_H_

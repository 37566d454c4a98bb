// tlmctl: the command-line client of tlmd. See `tlmctl --help`.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "client/tlmctl.h"

int main(int argc, char** argv) {
  const char* env = std::getenv("TLMD_SERVER");
  const std::string server = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
  tlm::client::Terminal terminal{std::cout, std::cerr, isatty(STDOUT_FILENO) == 1};
  return tlm::client::RunTlmctl(std::vector<std::string>(argv + 1, argv + argc), terminal, server);
}

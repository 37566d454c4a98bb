// tlmctl: the command-line client of tlmd. See `tlmctl --help`; the command
// logic lives in client/tlmctl_lib.h.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "client/tlmctl_lib.h"

int main(int argc, char** argv) {
  const tlm::client::Endpoint defaults =
      tlm::client::EndpointFromEnvironment([](const char* name) { return std::getenv(name); });
  tlm::client::Console console{std::cin, std::cout, std::cerr, isatty(STDOUT_FILENO) == 1};
  return tlm::client::RunTlmctl(std::vector<std::string>(argv + 1, argv + argc), defaults, console);
}

// tlmctl: the command-line client of tlmd. See `tlmctl --help`.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "client/tlmctl.h"

int main(int argc, char** argv) {
  auto env = [](const char* name) {
    const char* value = std::getenv(name);
    return std::string(value != nullptr ? value : "");
  };
  tlm::client::Endpoint defaults;
  if (!env("TLMD_SERVER").empty()) defaults.server = env("TLMD_SERVER");
  defaults.security.tls_ca_file = env("TLMD_TLS_CA");
  defaults.security.token_file = env("TLMD_TOKEN_FILE");
  tlm::client::Terminal terminal{std::cout, std::cerr, isatty(STDOUT_FILENO) == 1};
  return tlm::client::RunTlmctl(std::vector<std::string>(argv + 1, argv + argc), terminal,
                                defaults);
}

// The emulator drivers' one reporting rule: a line per check, exit 1 at the first failure.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

inline void expect(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) {
        std::fflush(stdout);
        std::exit(1);
    }
}

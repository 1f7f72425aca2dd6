# Makevars for the sanitizer build of tools/run-tests.R --sanitize (used as
# R_MAKEVARS_USER): AddressSanitizer and UndefinedBehaviorSanitizer in the
# compiler and linker command, debug information, light optimisation.
# A UB report stops nothing (it is counted from the log); an ASan report
# aborts the test process.
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize=float-divide-by-zero
CXX17 = g++ $(SANITIZE)
CXX17FLAGS = -g -O1
CXX = g++ $(SANITIZE)
CXXFLAGS = -g -O1
CC = gcc $(SANITIZE)
CFLAGS = -g -O1

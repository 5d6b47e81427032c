// `tstar` and `bench` as users start them. The compute profile pins environment variables that
// libraries read when they load (compute_environment.h); this launcher, linked without libtorch,
// sets them and replaces itself with the program (TSTAR_LAUNCHED_PROGRAM, beside it), which then
// loads libtorch once, in the pinned environment.
#include "tstar/compute_environment.h"

int main(int, char** argv) { return tstar::launch_with_pinned_environment(TSTAR_LAUNCHED_PROGRAM, argv); }

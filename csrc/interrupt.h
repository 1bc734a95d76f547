// Ctrl-C during a long kernel call. While python/nmmfit/ops.py holds an interruptible scope (on the
// main thread, around one op call), SIGINT runs a C handler that only sets an atomic flag (async-
// signal-safe); the CPU executor's threads read it between checkpoint segments and stop, and the op
// then raises. No Python API is touched by the handler or by OpenMP threads: the ops run with the
// GIL released, so Python's own handler could not run until the call returned.
#pragma once

namespace nmmfit {

// True once SIGINT arrived inside the current scope (false outside any scope).
bool interrupt_requested();

// Installs the flag-setting SIGINT handler and clears the flag; scopes nest (counted), only the
// outermost installs. Call from the main thread.
void begin_interruptible();

// Leaves a scope; the outermost restores the previous handler. Returns whether SIGINT arrived.
bool end_interruptible();

}  // namespace nmmfit

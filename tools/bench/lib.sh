# Sourced by the hand-measurement scripts in this directory.

# own_pid PID BINARY: PID itself, or the first of its descendants running
# BINARY. With a PERF wrapper (strace, perf stat, heaptrack) the started
# PID is the wrapper's: its CPU and memory are not the pipeline's, and some
# wrappers do not pass the stopping SIGINT on.
own_pid() {
  local exe p todo=("$1")
  exe=$(readlink -f "$2")
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}; todo=("${todo[@]:1}")
    [ "$(readlink -f "/proc/$p/exe" 2>/dev/null)" = "$exe" ] && { echo "$p"; return; }
    todo+=($(pgrep -P "$p"))
  done
  echo "$1"
}

# Become root for the rest of the calling script: sourced first by the scripts an admin runs
# from the README (demo.sh, test.sh), so that the same command works in a root shell on a bare
# Debian (which has no sudo) and for a user with sudo.
#
#   . "$(dirname "$0")/lib/root.sh"; bbwd_become_root "$0" "$@"
#
# As root: returns at once. Otherwise re-runs the script under sudo, keeping the caller's Rust
# toolchain (rustup and cargo live in the user's home; sudo's secure_path would hide them) and
# the caller's BBWD_* and BENCH_* settings (which build to run, benchmark knobs), which sudo's
# env_reset would drop.
bbwd_become_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  local script=$1
  shift
  if ! command -v sudo >/dev/null; then
    echo "$(basename "$script"): needs root (it installs Debian packages and builds network namespaces): run it in a root shell, e.g. su -c 'bash $script'" >&2
    exit 1
  fi
  local keep=() var
  for var in $(compgen -e); do
    case "$var" in BBWD_* | BENCH_*) keep+=("$var=${!var}") ;; esac
  done
  echo "$(basename "$script"): re-running as root through sudo" >&2
  exec sudo env "PATH=$PATH" "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" \
    "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" "${keep[@]}" bash "$script" "$@"
}

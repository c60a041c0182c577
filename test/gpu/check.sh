#!/usr/bin/env bash
# The real-GPU check: Causeway's loader on a machine with an NVIDIA GPU, PyTorch and nvcc.
#   bash test/gpu/check.sh OUTDIR        (as root, with bpf/build/ built: make -C bpf)
# Writes into OUTDIR:
#   env.txt          the kernel (BTF, tracefs, BPF settings), the GPU, PyTorch and nvcc
#   discovered.bin   the loader's raw output while test/gpu/torch_workload.py ran, the loader
#                    finding PyTorch's CUDA libraries as it mapped them
#   discovered.json  what PyTorch measured in that run (its waits, its profiler's kernels)
#   named.bin, named.json  the same with those libraries named up front (--lib)
#   launch-cost.txt  CPU per launch of an empty kernel, without probes, with empty programs on
#                    the loader's attach points (causeway-floor), and with the loader: ROUNDS
#                    interleaved rounds (0: none), LAUNCHES launches each
#   *.err            what the loader, the floor and the workload said on stderr
# Then, where Node.js is: node dist/test/gpu/compare.js OUTDIR
set -u
out=${1:?usage: bash test/gpu/check.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
loader=$root/bpf/build/causeway-loader
floor=$root/bpf/build/causeway-floor
rounds=${ROUNDS:-5}
launches=${LAUNCHES:-200000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

log() { printf 'gpu check: %s\n' "$*" >&2; }

environment() {
	# Tracepoints attach through tracefs: mount it where the machine did not.
	[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing 2>&1
	uname -a
	echo "BTF: $(ls -l /sys/kernel/btf/vmlinux 2>&1)"
	echo "tracefs: $(grep -E ' (tracefs|debugfs) ' /proc/mounts | tr '\n' ' ')"
	echo "uprobe PMU: $(cat /sys/bus/event_source/devices/uprobe/type 2>&1)"
	echo "perf_event_paranoid: $(cat /proc/sys/kernel/perf_event_paranoid 2>&1)"
	echo "unprivileged_bpf_disabled: $(cat /proc/sys/kernel/unprivileged_bpf_disabled 2>&1)"
	nproc
	nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>&1
	python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)' 2>&1
	nvcc --version 2>&1 | tail -1
	"$loader" --help >/dev/null 2>&1 && echo "loader: runs" || echo "loader: does not run: $("$loader" --help 2>&1 | head -3)"
}

# Waits up to a minute for a command to succeed while process PID runs; false if it does not.
started() {
	local pid=$1
	shift
	for _ in $(seq 600); do
		"$@" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# Starts the loader with its stdin on a pipe the check holds; waits for its first frame (it
# writes HELLO once loaded and attached). Arguments: output file, loader options.
start_loader() {
	local frames=$1
	shift
	rm -f "$work/commands"
	mkfifo "$work/commands"
	"$loader" "$@" <"$work/commands" >"$frames" 2>>"$out/loader.err" &
	loader_pid=$!
	exec 3>"$work/commands"
	started "$loader_pid" test -s "$frames" || {
		log "the loader did not start (see loader.err)"
		return 1
	}
}

stop_loader() {
	echo quit >&3
	exec 3>&-
	wait "$loader_pid"
}

start_floor() {
	"$floor" "$@" >"$work/floor.out" 2>>"$out/floor.err" &
	floor_pid=$!
	started "$floor_pid" grep -q attached "$work/floor.out" || {
		log "the floor did not start (see floor.err)"
		return 1
	}
}

stop_floor() {
	kill -INT "$floor_pid"
	wait "$floor_pid"
}

# Arguments: the run's name (its files are NAME.bin, NAME.json), loader options.
capture() {
	local name=$1
	shift
	log "capturing while PyTorch runs ($name: loader $*)"
	start_loader "$out/$name.bin" --stats-ms 500 "$@" || return 1
	sleep 1
	python3 "$here/torch_workload.py" "$out/$name.json" 2>>"$out/workload.err"
	log "workload exited with $?"
	sleep 1 # the last records read and written
	stop_loader
	log "loader exited with $?; $(stat -c %s "$out/$name.bin") bytes of frames"
}

# The CUDA runtime and driver files PyTorch maps, as --lib options.
torch_libraries() {
	python3 -c '
import torch
torch.zeros(1, device="cuda")
paths = {line.split()[-1] for line in open("/proc/self/maps") if "libcudart.so" in line or "libcuda.so" in line}
print(" ".join("--lib " + path for path in sorted(paths)))'
}

launch_cost() {
	local program=$work/launch_cost libs config order
	nvcc -O2 -cudart shared -o "$program" "$here/launch_cost.cu" || return 1
	mapfile -t libs < <("$program" --libs)
	echo "libraries: ${libs[*]}" >"$out/launch-cost.txt"
	echo "round configuration cpu_ns_per_launch wall_ns_per_launch" >>"$out/launch-cost.txt"
	local lib_options=()
	for lib in "${libs[@]}"; do lib_options+=(--lib "$lib"); done
	for round in $(seq "$rounds"); do
		case $((round % 3)) in
		0) order="without floor causeway" ;;
		1) order="floor causeway without" ;;
		2) order="causeway without floor" ;;
		esac
		for config in $order; do
			case $config in
			without) echo "$round without $("$program" "$launches")" ;;
			floor)
				start_floor "${lib_options[@]}" || return 1
				echo "$round floor $("$program" "$launches")"
				stop_floor
				;;
			causeway)
				start_loader "$work/launch-frames.bin" "${lib_options[@]}" || return 1
				echo "$round causeway $("$program" "$launches")"
				stop_loader
				;;
			esac >>"$out/launch-cost.txt"
			sleep 1 # detached probes freed before the next configuration
		done
		log "launch cost: round $round of $rounds done"
	done
}

environment >"$out/env.txt" 2>&1
log "$(head -2 "$out/env.txt" | tr '\n' ' ')"
# As a user runs it: the loader finds PyTorch when it maps CUDA; then with PyTorch's CUDA
# libraries named up front, probed before it maps them.
capture discovered
# shellcheck disable=SC2046
capture named $(torch_libraries)
[ "$rounds" -gt 0 ] && launch_cost
log "done: $(ls "$out" | tr '\n' ' ')"

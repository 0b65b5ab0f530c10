#!/usr/bin/env python3
"""MediaPipe's side of the scheduler benchmark (issue 3).

Times MediaPipe's own C++ framework (the `mediapipe==0.10.14` wheel) on the graph shapes that
`framework/benches/scheduler.rs` times for mediagraph:

- chain: N PassThroughCalculators (N = 1, 10, 50), M = 20,000 int packets fed from Python with
  add_packet_to_input_stream, observed with observe_output_stream; the per-packet-hop cost is
  the least-squares slope of the median wall time against N, divided by M (the Python feeding
  and observing costs are the same for every N, so they drop out of the slope);
- fan: 1 -> 8 parallel PassThroughCalculators -> MergeCalculator, M packets.

Each measurement is one warm-up run plus REPS timed runs (median reported) of a fresh
CalculatorGraph; the time is from start_run to the end of wait_until_done. Lines starting with
`RESULT ` are read by scripts/bench-scheduler.

Usage: mediapipe_chain.py [--reps 5] [--m 20000] [--threads-1]
"""

import argparse
import os
import statistics
import time

import mediapipe as mp

NS = (1, 10, 50)


def chain_config(n, num_threads=0):
    lines = ["input_stream: 'in'", "output_stream: 'out'"]
    if num_threads:
        lines.append(f"num_threads: {num_threads}")
    for i in range(n):
        src = "in" if i == 0 else f"s{i}"
        dst = "out" if i + 1 == n else f"s{i + 1}"
        lines.append(
            f"node {{ calculator: 'PassThroughCalculator' input_stream: '{src}' "
            f"output_stream: '{dst}' }}"
        )
    return "\n".join(lines)


def fan_config(branches):
    lines = ["input_stream: 'in'", "output_stream: 'out'"]
    for b in range(branches):
        lines.append(
            f"node {{ calculator: 'PassThroughCalculator' input_stream: 'in' "
            f"output_stream: 'b{b}' }}"
        )
    merge_inputs = " ".join(f"input_stream: 'b{b}'" for b in range(branches))
    lines.append(f"node {{ calculator: 'MergeCalculator' {merge_inputs} output_stream: 'out' }}")
    return "\n".join(lines)


def timed_run(config, m):
    graph = mp.CalculatorGraph(graph_config=config)
    count = [0]

    def on_packet(_stream, _packet):
        count[0] += 1

    graph.observe_output_stream("out", on_packet)
    create_int = mp.packet_creator.create_int
    add = graph.add_packet_to_input_stream
    start = time.perf_counter()
    graph.start_run()
    for i in range(m):
        add("in", create_int(i).at(i))
    graph.close_all_packet_sources()
    graph.wait_until_done()
    elapsed = time.perf_counter() - start
    if graph.has_error():
        raise RuntimeError("graph reported an error")
    if count[0] != m:
        raise RuntimeError(f"observed {count[0]} packets of {m}")
    return elapsed


def time_reps(config, m, reps):
    timed_run(config, m)  # warm-up
    return [timed_run(config, m) for _ in range(reps)]


def slope(xs, ys):
    mx = sum(xs) / len(xs)
    my = sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    return sxy / sxx


def fmt(times):
    return " ".join(f"{t * 1e3:.1f}" for t in times)


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def bench_chain(label, num_threads, m, reps):
    """Slopes in us per packet-hop: (of the medians, of the minima, sorted per-round slopes).

    The shapes are interleaved (one round runs N = 1, 10, 50 once each; round 0 is a warm-up)
    so that a slow spell of a noisy machine hits every N alike instead of tilting the slope.
    """
    configs = [chain_config(n, num_threads) for n in NS]
    times = [[] for _ in NS]
    for rnd in range(reps + 1):
        for k, config in enumerate(configs):
            t = timed_run(config, m)
            if rnd > 0:
                times[k].append(t)
    for k, n in enumerate(NS):
        med = statistics.median(times[k])
        print(
            f"  {label:<10} N={n:<3} median {med * 1e3:8.1f} ms  "
            f"({med / m * 1e6:6.3f} us/packet)  runs [ms]: {fmt(times[k])}",
            flush=True,
        )
    per_hop = lambda ys: slope(NS, ys) / m * 1e6  # noqa: E731
    rounds = sorted(per_hop([t[r] for t in times]) for r in range(reps))
    return (
        per_hop([statistics.median(t) for t in times]),
        per_hop([min(t) for t in times]),
        rounds,
    )


def describe(slopes):
    of_medians, of_minima, rounds = slopes
    per_round = " ".join(f"{x:.3f}" for x in rounds)
    return f"{of_medians:.3f} us (slope of minima {of_minima:.3f}; per-round slopes {per_round})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=int(os.environ.get("MEDIAGRAPH_BENCH_REPS", 5)))
    ap.add_argument("--m", type=int, default=int(os.environ.get("MEDIAGRAPH_BENCH_M", 20000)))
    ap.add_argument(
        "--no-threads-1",
        action="store_true",
        help="skip the num_threads: 1 chain (informative only)",
    )
    args = ap.parse_args()
    m, reps = args.m, max(1, args.reps)
    print(
        f"MediaPipe {mp.__version__} framework benchmark: M={m} packets, "
        f"median of {reps} runs (+1 warm-up), {os.cpu_count()} cores, load average {loadavg()}",
        flush=True,
    )

    print("\nchain of N PassThroughCalculators, packets fed from Python:", flush=True)
    chain_default = bench_chain("default", 0, m, reps)
    chain_one = None if args.no_threads_1 else bench_chain("1 thread", 1, m, reps)
    print("  per packet-hop, slope over N=1,10,50 of the medians:")
    print(f"    default executor: {describe(chain_default)}")
    if chain_one is not None:
        print(f"    num_threads=1:    {describe(chain_one)}")
    slope_default, slope_default_min, rounds = chain_default
    slope_one = None if chain_one is None else chain_one[0]

    print("\nfan-out/fan-in 1 -> 8 PassThroughCalculators -> MergeCalculator:", flush=True)
    fan = time_reps(fan_config(8), m, reps)
    fan_med = statistics.median(fan)
    fan_us = fan_med / m * 1e6
    print(
        f"  median {fan_med * 1e3:.1f} ms ({fan_us:.3f} us/packet)  runs [ms]: {fmt(fan)}",
        flush=True,
    )

    print(f"load average now {loadavg()}")
    print(f"RESULT chain_slope_us={slope_default:.4f}")
    print(f"RESULT chain_slope_min_us={slope_default_min:.4f}")
    print("RESULT chain_slope_rounds_us=" + ",".join(f"{x:.3f}" for x in rounds))
    if slope_one is not None:
        print(f"RESULT chain_slope_1thread_us={slope_one:.4f}")
    print(f"RESULT fan_us_per_packet={fan_us:.4f}")


if __name__ == "__main__":
    main()

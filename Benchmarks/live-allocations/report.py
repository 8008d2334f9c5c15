#!/usr/bin/env python3
"""Groups the live allocations written by live-allocations.c by call site and prints bytes per connection.

usage: report.py OUT MAPS CONNECTIONS [FRAMES]
  OUT          the tracer's output file
  MAPS         a copy of /proc/PID/maps of the traced process (to symbolize its addresses)
  CONNECTIONS  divide by this (the connections opened while recording)
  FRAMES       call-stack frames that make a group's key (default 3)
"""
import bisect
import collections
import subprocess
import sys

SYMBOLIZER = "/opt/swift/usr/bin/llvm-symbolizer"
DEMANGLER = "/opt/swift/usr/bin/swift-demangle"
# Allocator and runtime frames, skipped so that a group is named by the code that asked for the memory.
SKIP = ("swift_slowAlloc", "swift_allocObject", "malloc", "swift::", "swift_task_alloc", "_swift_", "swift_retain")


def regions_of(maps_path):
    regions = []
    for line in open(maps_path):
        parts = line.split()
        if len(parts) < 6 or not parts[5].startswith("/"):
            continue
        low, high = (int(x, 16) for x in parts[0].split("-"))
        regions.append((low, high, int(parts[2], 16), parts[5]))
    return sorted(regions)


def symbolize(addresses, regions):
    starts = [r[0] for r in regions]
    by_module = collections.defaultdict(list)
    for address in addresses:
        value = int(address, 16)
        i = bisect.bisect_right(starts, value) - 1
        if i >= 0 and value < regions[i][1]:
            low, _, offset, module = regions[i]
            by_module[module].append((address, value - low + offset))
    names = {}
    for module, items in by_module.items():
        query = "\n".join(hex(offset) for _, offset in items)
        answer = subprocess.run([SYMBOLIZER, "--obj=" + module, "--functions=linkage", "--no-inlines"],
                                input=query, capture_output=True, text=True).stdout
        blocks = [b for b in answer.split("\n\n") if b.strip()]
        for (address, _), block in zip(items, blocks):
            names[address] = block.splitlines()[0]
    mangled = sorted(set(names.values()))
    demangled = subprocess.run([DEMANGLER, "--simplified", "--compact"], input="\n".join(mangled),
                               capture_output=True, text=True).stdout.splitlines()
    readable = dict(zip(mangled, demangled))
    return {a: readable.get(n, n)[:110] for a, n in names.items()}


def main():
    out_path, maps_path, connections = sys.argv[1], sys.argv[2], float(sys.argv[3])
    depth = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    lines = open(out_path).read().splitlines()
    rows = [line.split() for line in lines[1:] if line.strip()]
    names = symbolize({a for row in rows for a in row[1:]}, regions_of(maps_path))
    size = collections.Counter()
    count = collections.Counter()
    for row in rows:
        frames = [names.get(a, "??") for a in row[1:]]
        frames = [f for f in frames if not f.startswith(SKIP) and f != "??"]
        key = " <- ".join(frames[:depth])
        size[key] += int(row[0])
        count[key] += 1
    total = sum(size.values())
    print(lines[0])
    print(f"{total / connections:.0f} bytes per connection in {sum(count.values()) / connections:.1f} allocations")
    print(" bytes/conn  allocs/conn  share  call site")
    for key, value in size.most_common(30):
        print(f"{value / connections:11.1f}  {count[key] / connections:11.2f}  {100 * value / total:4.1f}%  {key}")


if __name__ == "__main__":
    main()

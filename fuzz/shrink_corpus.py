#!/usr/bin/env python3
"""Shrinks a fuzz target's checked-in corpus to at most N files that keep the
coverage (edges) of the checked-in corpus plus a fuzzing run's new inputs.

    python3 fuzz/shrink_corpus.py TARGET [MAX_FILES] [EXTRA_DIR...]

Runs the target binary (built by `cargo fuzz build --sanitizer none`) once
with libFuzzer's -merge=1 to learn each input's coverage, then picks inputs
greedily, most new edges first, until every edge is covered or MAX_FILES
(default 200) are picked. Named inputs (seeds, `regress*`: anything that is
not a 40-hex-digit libFuzzer name) are always kept. corpus/TARGET is
rewritten: named inputs stay, picked unnamed ones are stored by their SHA-1.
EXTRA_DIR defaults to target/work/TARGET (where fuzz/run_all.sh puts new
inputs)."""
import hashlib
import os
import re
import subprocess
import sys
import tempfile

HEX40 = re.compile(r"^[0-9a-f]{40}$")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    os.chdir(here)
    target = sys.argv[1]
    cap = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    extra = sys.argv[3:] or [f"target/work/{target}"]
    corpus = f"corpus/{target}"
    binary = f"target/x86_64-unknown-linux-gnu/release/{target}"
    with tempfile.TemporaryDirectory() as tmp:
        ctl = os.path.join(tmp, "control")
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        subprocess.run(
            [binary, "-merge=1", f"-merge_control_file={ctl}", out, corpus, *extra],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(ctl) as f:
            lines = f.read().splitlines()
    n = int(lines[0])
    files = lines[2:2 + n]
    cov = {}
    for line in lines[2 + n:]:
        parts = line.split()
        if parts and parts[0] == "COV":
            cov[int(parts[1])] = set(map(int, parts[2:]))
    everything = set().union(*cov.values()) if cov else set()
    named = [i for i, p in enumerate(files)
             if os.path.dirname(p) == corpus and not HEX40.match(os.path.basename(p))]
    covered = set()
    for i in named:
        covered |= cov.get(i, set())
    picked = []
    left = {i: c - covered for i, c in cov.items() if i not in named}
    while len(named) + len(picked) < cap:
        best = max(left, key=lambda i: (len(left[i]), -os.path.getsize(files[i])), default=None)
        if best is None or not left[best]:
            break
        gain = left.pop(best)
        picked.append(best)
        covered |= gain
        for i in left:
            left[i] -= gain
    data = {}
    for i in picked:
        with open(files[i], "rb") as f:
            body = f.read()
        data[hashlib.sha1(body).hexdigest()] = body
    for name in os.listdir(corpus):
        if HEX40.match(name):
            os.remove(os.path.join(corpus, name))
    for name, body in data.items():
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(body)
    print(f"{target}: {len(named)} named + {len(data)} picked inputs cover "
          f"{len(covered)} of {len(everything)} edges seen in {n} inputs")


main()

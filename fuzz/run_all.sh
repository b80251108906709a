#!/usr/bin/env bash
# Fuzzes targets one after another, each for SECS seconds, at low priority:
#   fuzz/run_all.sh [SECS] [TARGET...]      (default: 620 s, every target)
# New inputs go to target/work/TARGET (not committed); the checked-in seeds in
# corpus/TARGET are read, not written. Crashes land in artifacts/TARGET. Each
# target's libFuzzer log is target/logs/TARGET.log; its last lines (runs,
# coverage, corpus size) are printed. Minimise what is worth keeping with
#   cargo fuzz cmin --sanitizer none TARGET   (after copying it into corpus/TARGET)
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-620}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(sse ndjson decode core_ops http_front config json_scan)
fi
mkdir -p target/logs
for t in "${targets[@]}"; do
  mkdir -p "target/work/$t"
  echo "=== $t: ${secs}s, started $(date -u +%FT%TZ)"
  start=$SECONDS
  nice -n 15 cargo fuzz run --sanitizer none "$t" "target/work/$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=60 -print_final_stats=1 >"target/logs/$t.log" 2>&1
  rc=$?
  echo "=== $t: exit $rc after $((SECONDS - start))s"
  grep -E '^#[0-9]+ +(DONE|INITED)|^Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|panicked' \
    "target/logs/$t.log" | tail -n 6
  echo "corpus: $(ls "target/work/$t" | wc -l) new files, $(ls "corpus/$t" | wc -l) checked-in seeds"
done

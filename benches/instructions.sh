#!/usr/bin/env bash
# Instructions per request of the in-process rows, counted by callgrind: exact and repeatable,
# unlike time on a shared machine. Writes target/criterion/in_process/observe-instructions.json,
# which `cargo run -p observe-benches --bin results` adds to RESULTS.md.
#
#   benches/instructions.sh            # the default rows below
#   benches/instructions.sh ROW...     # rows of benches/peers by criterion id
#
# Each row runs twice under valgrind (5,000 and 15,000 requests), counting only inside the
# request loop (`run_in_process`); the difference divided by 10,000 is the cost of one request,
# with start-up, router construction and clock calibration excluded.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
rows=("$@")
if [ ${#rows[@]} -eq 0 ]; then
  # Every in-process row of the request-path bench, in its table's order.
  rows=(bare_axum noop_layer tower_http_trace tower_http_trace_fmt_sink prometheus_client_red
        naive_string_labels axum_otel_metrics axum_prometheus autometrics
        axum_tracing_otel_unsampled axum_tracing_otel_sampled observe_metrics
        observe_full_unsampled observe_full_unsampled_info observe_sampled)
fi
cargo build --release -q -p observe-benches --example profile_row
bin=target/release/examples/profile_row
out=target/criterion/in_process
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
count() { # row n -> instructions collected inside the request loop (of that thread only)
  local log="$tmp/log.$1.$2" n
  if ! valgrind --tool=callgrind --toggle-collect='*run_in_process*' \
      --callgrind-out-file="$tmp/cg.$1.$2" "$bin" "$1" "$2" >"$log" 2>&1; then
    echo "row $1 failed under valgrind:" >&2
    cat "$log" >&2
    exit 1
  fi
  n=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log")
  [ -n "$n" ] || { echo "no instruction count for row $1:" >&2; cat "$log" >&2; exit 1; }
  echo "$n"
}
# Rows as an array, in the order given (the results table keeps it).
json="{\"requests\":10000,\"valgrind\":\"$(valgrind --version)\",\"rows\":["
sep=""
for row in "${rows[@]}"; do
  a=$(count "$row" 5000)
  b=$(count "$row" 15000)
  per=$(( (b - a) / 10000 ))
  printf '%-32s %7d instructions/request\n' "$row" "$per"
  json+="$sep[\"$row\",$per]"
  sep=","
done
json+="]}"
echo "$json" > "$out/observe-instructions.json"
echo "wrote $out/observe-instructions.json"

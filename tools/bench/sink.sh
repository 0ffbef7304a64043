#!/bin/bash
# usage: ROWS=N tools/bench/sink.sh TOPIC_PREFIX TARGET_DB [--sink-set K=V ...]   sink only, over the topics a `KEEP_TOPICS=1 source.sh` run left (its "prefix" line)
# Hand A/B measurement (sink-only), used for the comparisons in docs/benchmarks.md.
# Needs `cargo xtask services up` (default ports) and a release build of the
# pipeline example; PIPELINE=<binary> picks another build, PERF=<prefix> wraps
# it (e.g. "heaptrack -o /tmp/ht"; the figures and the stopping SIGINT are still the
# pipeline's own, see lib.sh), LOG sets RUST_LOG. Not part of the test suite.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tools/bench/lib.sh"
export PGPASSWORD=cdc
P=$1; DB=$2; shift 2; R=${ROWS:-300000}
psql -h 127.0.0.1 -p 55433 -U cdc -d bf_target -qAt -c "create database $DB" 2>/dev/null
sed "s/pg-sink-connector/sinkmem-$DB/" $ROOT/config/postg-sink-connector.json > /tmp/sink_$DB.json
RUST_LOG=${LOG:-warn} ${PERF} ${PIPELINE:-$ROOT/target/release/examples/pipeline} --sink /tmp/sink_$DB.json --bootstrap-servers 127.0.0.1:59092 --no-rest --data-dir /tmp/sinkmem_dd --sink-set "topics.regex=$P\\.public\\..*" --sink-set connection.url=jdbc:postgresql://127.0.0.1:55433/$DB "$@" > /tmp/sinkmem.log 2>&1 &
PID=$!; S=$(date +%s.%N)
# One psql session polls the target (a new connection per poll costs CPU the pipeline would use);
# the count is -1 until the sink has created the table.
coproc POLL { psql -h 127.0.0.1 -p 55433 -U cdc -d $DB -qAt; }
SECONDS=0
while true; do echo "select case when to_regclass('public.employees') is null then -1 else (xpath('/row/c/text()', query_to_xml('select count(*) as c from public.employees', false, true, '')))[1]::text::bigint end;" >&${POLL[1]}; read -r -t 10 C <&${POLL[0]}; [ "$C" = "$R" ] && break; kill -0 $PID 2>/dev/null || { echo died; tail -5 /tmp/sinkmem.log; break; }; [ $SECONDS -gt 180 ] && { echo "TIMEOUT at $C rows"; break; }; sleep 0.1; done
E=$(date +%s.%N); echo "\\q" >&${POLL[1]}; PP=$(own_pid $PID ${PIPELINE:-$ROOT/target/release/examples/pipeline})
echo "sink: $(echo "$R / ($E - $S)" | bc) rows/s, $(grep VmHWM /proc/$PP/status)"
kill -INT $PP; wait $PID

#!/bin/bash
# usage: tools/bench/e2e.sh ROWS [--source-set/--sink-set K=V ...]   source + sink into a fresh target; rows/s and VmHWM
# Hand A/B measurement (end-to-end), used for the comparisons in docs/benchmarks.md.
# Needs `cargo xtask services up` (default ports) and a release build of the
# pipeline example; PIPELINE=<binary> picks another build, PERF=<prefix> wraps
# it (e.g. "heaptrack -o /tmp/ht"; the figures and the stopping SIGINT are still the
# pipeline's own, see lib.sh), LOG sets RUST_LOG. Not part of the test suite.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tools/bench/lib.sh"
export PGPASSWORD=cdc; ROWS=$1; shift
N=$RANDOM$RANDOM; DB=e2e_$N; Q="psql -h 127.0.0.1 -p 55432 -U cdc -qAt"; QT="psql -h 127.0.0.1 -p 55433 -U cdc -qAt"
$Q -d bf_source -c "create database $DB"; $QT -d bf_target -c "create database $DB"
$Q -d $DB -c "CREATE TABLE employees (emp_id SERIAL PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(100), department VARCHAR(50), salary DECIMAL(10,2), hire_date DATE, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP); CREATE PUBLICATION pub_$N FOR TABLE employees;" -c "select pg_create_logical_replication_slot('slot_$N','pgoutput')" >/dev/null
for i in $(seq 1 $((ROWS/10000))); do $Q -d $DB -c "INSERT INTO employees (name,email,department,salary,hire_date) SELECT 'name '||g, 'e'||g||'@x.com', 'Engineering', 1000+g, '2024-01-01' FROM generate_series(1,10000) g"; done
sed "s/pg-sink-connector/e2esink-$N/" $ROOT/config/postg-sink-connector.json > /tmp/e2esink_$N.json
sed "s/pg-source-connector/e2esrc-$N/" $ROOT/config/postg-source-connector.json > /tmp/e2esrc_$N.json
P=${PIPELINE:-$ROOT/target/release/examples/pipeline}
RUST_LOG=${LOG:-warn} ${PERF} $P --source /tmp/e2esrc_$N.json --sink /tmp/e2esink_$N.json --bootstrap-servers 127.0.0.1:59092 --no-rest --data-dir /tmp/e2e_data_$N --source-set database.hostname=127.0.0.1 --source-set database.port=55432 --source-set database.dbname=$DB --source-set slot.name=slot_$N --source-set publication.name=pub_$N --source-set publication.autocreate.mode=disabled --source-set snapshot.mode=no_data --source-set topic.prefix=e$N --source-set offsets.storage.topic=e$N.offsets --sink-set "topics.regex=e$N\\.public\\..*" --sink-set connection.url=jdbc:postgresql://127.0.0.1:55433/$DB "$@" > /tmp/e2e_run.log 2>&1 &
PID=$!; S=$(date +%s.%N)
# One psql session polls the target (a new connection per poll costs CPU the pipeline would use);
# the count is -1 until the sink has created the table.
coproc POLL { $QT -d $DB; }
SECONDS=0
while true; do echo "select case when to_regclass('public.employees') is null then -1 else (xpath('/row/c/text()', query_to_xml('select count(*) as c from public.employees', false, true, '')))[1]::text::bigint end;" >&${POLL[1]}; read -r -t 10 C <&${POLL[0]}; [ "$C" = "$ROWS" ] && break; kill -0 $PID 2>/dev/null || { echo died; tail -5 /tmp/e2e_run.log; break; }; [ $SECONDS -gt 240 ] && { echo "TIMEOUT at $C rows"; break; }; sleep 0.1; done
E=$(date +%s.%N); echo "\\q" >&${POLL[1]}; PP=$(own_pid $PID $P)
echo "e2e: $(echo "$ROWS / ($E - $S)" | bc) rows/s ($(echo "$E - $S" | bc) s), $(grep VmHWM /proc/$PP/status)"
kill -INT $PP; wait $PID 2>/dev/null
$Q -d bf_source -c "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database='$DB'" >/dev/null; $Q -d bf_source -c "drop database $DB with (force)"; $QT -d bf_target -c "drop database $DB with (force)"
# Each run writes hundreds of MB to the broker: delete its topics (KEEP_TOPICS=1 keeps them).
[ -z "$KEEP_TOPICS" ] && java -Xmx256m -cp "$(cat $ROOT/target/services/kafka/classpath.txt)" org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:59092 --delete --if-exists --topic "e$N\\..*" >/dev/null 2>&1

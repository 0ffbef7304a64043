#!/bin/bash
# usage: tools/bench/source.sh ROWS [--source-set K=V ...]   prints pg_recvlogical and pg-cdc rows/s, CPU ticks (pg-cdc and the broker), minor page faults, VmHWM
# Hand A/B measurement (source-only), used for the comparisons in docs/benchmarks.md.
# Needs `cargo xtask services up` (default ports) and a release build of the
# pipeline example; PIPELINE=<binary> picks another build, PERF=<prefix> wraps
# it (e.g. "heaptrack -o /tmp/ht"; the figures and the stopping SIGINT are still the
# pipeline's own, see lib.sh), LOG sets RUST_LOG. Not part of the test suite.
# Each run has a position topic of its own (offsets.storage.topic=m<N>.offsets, deleted with its
# other topics): a first exactly-once start reads the shared one whole, 0.5 s on a broker of many runs.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tools/bench/lib.sh"
export PGPASSWORD=cdc; ROWS=$1; shift
N=$RANDOM$RANDOM; DB=meas_$N; Q="psql -h 127.0.0.1 -p 55432 -U cdc -qAt"
$Q -d bf_source -c "create database $DB"
$Q -d $DB -c "CREATE TABLE employees (emp_id SERIAL PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(100), department VARCHAR(50), salary DECIMAL(10,2), hire_date DATE, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP); CREATE PUBLICATION pub_$N FOR TABLE employees;" -c "select pg_create_logical_replication_slot('slot_$N','pgoutput')" -c "select pg_create_logical_replication_slot('rl_$N','pgoutput')" >/dev/null
for i in $(seq 1 $((ROWS/10000))); do $Q -d $DB -c "INSERT INTO employees (name,email,department,salary,hire_date) SELECT 'name '||g, 'e'||g||'@x.com', 'Engineering', 1000+g, '2024-01-01' FROM generate_series(1,10000) g"; done
END=$($Q -d $DB -c "select pg_current_wal_lsn()")
S=$(date +%s.%N); pg_recvlogical -h 127.0.0.1 -p 55432 -U cdc -d $DB -S rl_$N --start -o proto_version=1 -o publication_names=pub_$N -E $END -f /dev/null --no-loop; E=$(date +%s.%N)
echo "pg_recvlogical: $(echo "$ROWS / ($E - $S)" | bc) rows/s"
P=${PIPELINE:-$ROOT/target/release/examples/pipeline}
RUST_LOG=${LOG:-warn} ${PERF} $P --source $ROOT/config/postg-source-connector.json --bootstrap-servers 127.0.0.1:59092 --no-rest --data-dir /tmp/meas_data_$N --source-set database.hostname=127.0.0.1 --source-set database.port=55432 --source-set database.dbname=$DB --source-set slot.name=slot_$N --source-set publication.name=pub_$N --source-set publication.autocreate.mode=disabled --source-set snapshot.mode=no_data --source-set topic.prefix=m$N --source-set offsets.storage.topic=m$N.offsets --source-set status.update.interval.ms=100 "$@" > /tmp/meas_run.log 2>&1 &
BPID=$(pgrep -f "kafka.Kafka" | head -1); B0=$(awk "{print \$14+\$15}" /proc/$BPID/stat); PID=$!; S=$(date +%s.%N); FIRST=""; echo "prefix m$N started at $(date -u +%H:%M:%S.%N)"
# One psql session polls the slot (a new connection per poll cost ~15 % of the machine).
coproc POLL { $Q -d $DB; }
while true; do echo "select confirmed_flush_lsn >= '$END' from pg_replication_slots where slot_name='slot_$N';" >&${POLL[1]}; read -r -t 10 L <&${POLL[0]}; [ "$L" = "t" ] && break; kill -0 $PID 2>/dev/null || { echo died; tail -5 /tmp/meas_run.log; break; }; sleep 0.05; done
E=$(date +%s.%N); echo "\\q" >&${POLL[1]}; PP=$(own_pid $PID $P)
B1=$(awk "{print \$14+\$15}" /proc/$BPID/stat); echo "broker cpu ticks $((B1-B0))"; T=$(awk '{print $14+$15, "minflt", $10}' /proc/$PP/stat); HWM=$(grep VmHWM /proc/$PP/status)
echo "pg-cdc: $(echo "$ROWS / ($E - $S)" | bc) rows/s from start ($(echo "$E - $S" | bc) s), cpu ticks $T, $HWM"
kill -INT $PP; wait $PID 2>/dev/null
$Q -d bf_source -c "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database='$DB'" >/dev/null; $Q -d bf_source -c "drop database $DB with (force)"
# Each run writes hundreds of MB to the broker: delete its topics (KEEP_TOPICS=1 keeps them).
[ -z "$KEEP_TOPICS" ] && java -Xmx256m -cp "$(cat $ROOT/target/services/kafka/classpath.txt)" org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:59092 --delete --if-exists --topic "m$N\\..*" >/dev/null 2>&1

#!/bin/bash
# usage: tools/repro/decoded-before-visible.sh [PIPELINE_BINARY]
# Hand reproduction of a transaction decoded before it is visible: the walsender
# decodes a transaction once its commit record is flushed, while the committing
# backend may still be waiting (here: for a synchronous standby that does not
# exist) before other sessions see it. The transaction adds a column with a
# default and inserts a row; the script prints the `nickname` field's schema in
# the pipeline's change event, which has `'default': 'none'` only if the
# source's catalog read waited for the transaction (pg-logical
# `catalog::wait_until_visible`). It sets `synchronous_standby_names` on the
# whole source server for ~3 s: use it on `cargo xtask services up` services
# with nothing else running (not part of the test suite, for that reason).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PGPASSWORD=cdc; P=${1:-$ROOT/target/release/examples/pipeline}; N=$RANDOM$RANDOM; DB=vis_$N; Q="psql -h 127.0.0.1 -p 55432 -U cdc -qAt"
$Q -d bf_source -c "create database $DB"
$Q -d $DB -c "CREATE TABLE employees (emp_id SERIAL PRIMARY KEY, name TEXT); CREATE PUBLICATION pub_$N FOR TABLE employees;" -c "select pg_create_logical_replication_slot('slot_$N','pgoutput')" >/dev/null
$Q -d $DB -c "INSERT INTO employees (name) VALUES ('before')"
RUST_LOG=warn $P --source $ROOT/config/postg-source-connector.json --bootstrap-servers 127.0.0.1:59092 --no-rest --data-dir /tmp/vis_data_$N --source-set database.hostname=127.0.0.1 --source-set database.port=55432 --source-set database.dbname=$DB --source-set slot.name=slot_$N --source-set publication.name=pub_$N --source-set publication.autocreate.mode=disabled --source-set snapshot.mode=no_data --source-set topic.prefix=v$N --source-set table.include.list=public.employees > /tmp/visible_run.log 2>&1 &
PID=$!; sleep 4
$Q -d bf_source -c "ALTER SYSTEM SET synchronous_standby_names = 'nobody'" -c "SELECT pg_reload_conf()" >/dev/null; sleep 0.5
( $Q -d $DB -c "BEGIN; ALTER TABLE employees ADD COLUMN nickname TEXT DEFAULT 'none'; INSERT INTO employees (name, nickname) VALUES ('after', 'aa'); COMMIT;" & )
sleep 3
$Q -d bf_source -c "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()" >/dev/null
sleep 4
java -Xmx256m -cp "$(cat $ROOT/target/services/kafka/classpath.txt)" org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server 127.0.0.1:59092 --topic v$N.public.employees --from-beginning --max-messages 2 --timeout-ms 10000 --isolation-level read_committed 2>/dev/null | python3 -c "
import sys, json
for line in sys.stdin:
    v = json.loads(line)
    after = [f for f in v['schema']['fields'] if f['field']=='after'][0]
    nick = [f for f in after['fields'] if f['field']=='nickname']
    print('op', v['payload']['op'], 'name', v['payload']['after']['name'], 'nickname schema', nick)
"
grep -i "warn\|visible" /tmp/visible_run.log | head -3
kill -INT $PID; wait $PID 2>/dev/null
$Q -d bf_source -c "select pg_drop_replication_slot('slot_$N')" >/dev/null; $Q -d bf_source -c "drop database $DB with (force)"
java -Xmx256m -cp "$(cat $ROOT/target/services/kafka/classpath.txt)" org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:59092 --delete --if-exists --topic "v$N\\..*" >/dev/null 2>&1

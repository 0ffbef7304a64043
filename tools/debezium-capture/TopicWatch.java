import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Times how fast records arrive in a topic, from outside the process that
 * writes them: polls the end offsets of all of the topic's partitions every
 * 20 ms (reads no records) until they add up to the expected count.
 *
 * <pre>java -cp 'LIBS/*:CLASSES' TopicWatch BOOTSTRAP TOPIC EXPECTED [TIMEOUT_MS]</pre>
 *
 * Prints {@code watching} once connected, {@code count=… t_s=…} about once
 * a second, and at the end one line
 * {@code records=… first_record_s=… done_s=… rows_per_s=…}: the times
 * are seconds since {@code watching}; the rate counts the records that arrived
 * between the first poll that saw any and the one that saw them all. Exits 1 on
 * timeout. For a non-transactional writer the end offsets count records;
 * a transactional one adds its commit markers.
 */
public class TopicWatch {
    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: TopicWatch BOOTSTRAP TOPIC EXPECTED [TIMEOUT_MS]");
            System.exit(2);
        }
        String topic = args[1];
        long expected = Long.parseLong(args[2]);
        long timeoutMs = args.length > 3 ? Long.parseLong(args[3]) : 600_000;
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        p.put("client.id", "topic-watch");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
            consumer.listTopics(); // connects (and fails here if the broker is down)
            long t0 = System.nanoTime();
            System.out.println("watching");
            System.out.flush();
            List<TopicPartition> partitions = null;
            long first = -1;
            long firstCount = 0;
            long lastPrint = t0;
            while (true) {
                long now = System.nanoTime();
                if ((now - t0) / 1_000_000 > timeoutMs) {
                    System.out.println("timeout after " + timeoutMs + " ms");
                    System.exit(1);
                }
                if (partitions == null) {
                    List<PartitionInfo> infos = consumer.listTopics().get(topic);
                    if (infos != null && !infos.isEmpty()) {
                        partitions = new ArrayList<>();
                        for (PartitionInfo info : infos) {
                            partitions.add(new TopicPartition(topic, info.partition()));
                        }
                    }
                }
                long count = 0;
                if (partitions != null) {
                    for (Map.Entry<TopicPartition, Long> e : consumer.endOffsets(partitions).entrySet()) {
                        count += e.getValue();
                    }
                }
                now = System.nanoTime();
                if (first < 0 && count > 0) {
                    first = now;
                    firstCount = count;
                }
                if (count >= expected) {
                    double firstS = (first - t0) / 1e9;
                    double doneS = (now - t0) / 1e9;
                    double rate = (count - firstCount) / Math.max(1e-9, (now - first) / 1e9);
                    System.out.printf("records=%d first_record_s=%.3f done_s=%.3f rows_per_s=%.0f%n",
                            count, firstS, doneS, rate);
                    return;
                }
                if (now - lastPrint >= 1_000_000_000L) {
                    System.out.printf("count=%d t_s=%.1f%n", count, (now - t0) / 1e9);
                    System.out.flush();
                    lastPrint = now;
                }
                Thread.sleep(20);
            }
        }
    }
}

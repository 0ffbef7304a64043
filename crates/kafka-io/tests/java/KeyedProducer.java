// Produces keyed records with Kafka's own Java producer (default
// partitioner) and prints "<key>\t<partition>" for each acknowledged record.
// Used by tests/murmur2.rs to prove partitioning parity.
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class KeyedProducer {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int n = Integer.parseInt(args[2]);
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        props.put("acks", "all");
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(props)) {
            for (int i = 0; i < n; i++) {
                String key = KeyedProducer.key(i);
                RecordMetadata md = p.send(new ProducerRecord<>(topic,
                        key.getBytes(StandardCharsets.UTF_8), new byte[] {1})).get();
                System.out.println(key + "\t" + md.partition());
            }
        }
    }

    // Same as key() in murmur2.rs: lengths 1..30 bytes, ASCII and multi-byte UTF-8.
    static String key(int i) {
        StringBuilder sb = new StringBuilder(i % 3 == 0 ? "ключ" : "k");
        for (int j = 0; j < i % 13; j++) sb.append('x');
        sb.append(i);
        return sb.toString();
    }
}

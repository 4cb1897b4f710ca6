// The Java client's end-to-end latency peer (Kafka's own tools have no fixed-rate,
// send-to-handler latency test: EndToEndLatency sends one record at a time and waits).
// A KafkaProducer (acks=1, linger.ms=5 as the other peers, murmur2 on the key) sends 1 KiB JSON
// events at a fixed rate with the send time inside; a KafkaConsumer in a group polls on its
// own thread and records now - sent for each.
//
//   java -cp "classes/<version>:<kafka libs>/*" E2eLatency brokers=H:P topic=T group=G rate=5000 secs=20 [group_protocol=consumer]
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.*;

public class E2eLatency {
    static final long SEQ_BASE = 1_000_000L;
    static final Pattern SEQ = Pattern.compile("\"seq\":(\\d+),\"sent_ns\":(\\d+)");

    static long nowNs() {
        java.time.Instant i = java.time.Instant.now();
        return i.getEpochSecond() * 1_000_000_000L + i.getNano();
    }

    static String json(long seq, long sentNs, String body) {
        return "{\"specversion\":\"1.0\",\"id\":\"" + String.format("00000000-0000-4000-8000-%012d", seq)
            + "\",\"source\":\"bench\",\"type\":\"bench.event\",\"time\":\""
            + java.time.Instant.ofEpochSecond(0, sentNs) + "\",\"datacontenttype\":\"application/json\",\"data\":{\"key\":"
            + (seq % 1000) + ",\"seq\":" + seq + ",\"sent_ns\":" + sentNs + ",\"body\":\"" + body + "\"}}";
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (String a : argv) { int i = a.indexOf('='); if (i > 0) args.put(a.substring(0, i), a.substring(i + 1)); }
        long rate = Long.parseLong(args.getOrDefault("rate", "5000"));
        long warmupNs = Long.parseLong(args.getOrDefault("warmup", "5")) * 1_000_000_000L;
        long measureNs = Long.parseLong(args.getOrDefault("secs", "20")) * 1_000_000_000L;
        String topic = args.get("topic");
        String body = "x".repeat(1024 - json(SEQ_BASE, nowNs(), "").length());

        Properties cp = new Properties();
        cp.put("bootstrap.servers", args.get("brokers"));
        cp.put("group.id", args.get("group"));
        cp.put("auto.offset.reset", "earliest");
        cp.put("auto.commit.interval.ms", "500");
        cp.put("key.deserializer", StringDeserializer.class.getName());
        cp.put("value.deserializer", StringDeserializer.class.getName());
        // group_protocol=consumer: the KIP-848 group protocol (Kafka 4.x clients and brokers).
        if (args.containsKey("group_protocol")) cp.put("group.protocol", args.get("group_protocol"));
        List<long[]> samples = Collections.synchronizedList(new ArrayList<>());
        AtomicLong handled = new AtomicLong();
        Thread reader = new Thread(() -> {
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp)) {
                c.subscribe(List.of(topic));
                while (!Thread.currentThread().isInterrupted()) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                        Matcher m = SEQ.matcher(r.value());
                        if (!m.find()) throw new IllegalStateException("no seq in " + r.value());
                        long us = (nowNs() - Long.parseLong(m.group(2))) / 1000;
                        samples.add(new long[] {Long.parseLong(m.group(1)), us});
                        handled.incrementAndGet();
                    }
                }
            } catch (org.apache.kafka.common.errors.InterruptException e) {
                // stopping
            }
        });
        reader.setDaemon(true);
        reader.start();

        Properties pp = new Properties();
        pp.put("bootstrap.servers", args.get("brokers"));
        pp.put("acks", "1");
        pp.put("linger.ms", "5");
        pp.put("key.serializer", StringSerializer.class.getName());
        pp.put("value.serializer", StringSerializer.class.getName());
        long from = 0, seq = SEQ_BASE;
        try (KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
            long started = System.nanoTime(), firstSeen = 0, measureAt = 0;
            while (true) {
                long now = System.nanoTime();
                if (firstSeen == 0 && handled.get() > 0) firstSeen = now;
                if (from == 0 && now - started >= warmupNs && firstSeen != 0 && now - firstSeen >= 2_000_000_000L) {
                    from = seq; measureAt = now;
                }
                if (from != 0 && now - measureAt >= measureNs) break;
                long target = SEQ_BASE + (long) ((now - started) / 1e9 * rate);
                for (; seq < target; seq++) {
                    p.send(new ProducerRecord<>(topic, Long.toString(seq % 1000), json(seq, nowNs(), body)),
                        (md, e) -> { if (e != null) e.printStackTrace(); });
                }
                Thread.sleep(0, 500_000);
            }
        }
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (handled.get() < seq - SEQ_BASE && System.nanoTime() < deadline) Thread.sleep(10);
        long[] v;
        synchronized (samples) {
            final long f = from;
            v = samples.stream().filter(s -> s[0] >= f).mapToLong(s -> s[1]).sorted().toArray();
        }
        java.util.function.DoubleFunction<Long> at = q -> v.length == 0 ? 0L : v[(int) Math.round((v.length - 1) * q)];
        System.out.printf("RESULT {\"mode\":\"latency\",\"samples\":%d,\"sent\":%d,\"p50_us\":%d,\"p99_us\":%d,\"p999_us\":%d,\"max_us\":%d}%n",
            v.length, seq - from, at.apply(0.5), at.apply(0.99), at.apply(0.999), v.length == 0 ? 0 : v[v.length - 1]);
        System.exit(0);
    }
}

//! The Kafka client side of `scripts/bench-kafka`, built on the same librdkafka sluice uses:
//!
//! - `fill BOOTSTRAP TOPIC N`: produces N JSON events (the benchmark input) as fast as it can and
//!   prints the rate (the broker's produce rate with this client).
//! - `copy BOOTSTRAP FROM TO N`: consumes N records and produces each to another topic, with no
//!   decoding: the client-only ceiling a Kafka -> Kafka pipeline is measured against.
//! - `latency BOOTSTRAP IN OUT RATE SECONDS`: produces events carrying their send time at RATE/s
//!   and reads the pipeline's output topic, printing p50/p99/max of (arrival - send).

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn producer(bootstrap: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

fn consumer(bootstrap: &str, topic: &str, from_end: bool) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let meta = c.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in meta.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), if from_end { Offset::End } else { Offset::Beginning }).unwrap();
    }
    c.assign(&tpl).unwrap();
    c
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &[u8], value: &[u8]) {
    let mut r = BaseRecord::to(topic).key(key).payload(value);
    loop {
        match p.send(r) {
            Ok(()) => return,
            Err((_, back)) => {
                r = back;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn event(i: u64, sent_ms: i64) -> String {
    format!(
        "{{\"id\":{i},\"userId\":\"user{}\",\"eventType\":\"{}\",\"productId\":\"product_{}\",\"referrer\":\"search_results\",\"sent_ms\":{sent_ms}}}",
        i % 100_000,
        if i.is_multiple_of(4) { "search" } else { "product_click" },
        i % 500
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).unwrap_or_else(|| panic!("missing argument {i}; see the file's docs")).clone();
    match arg(0).as_str() {
        "fill" => {
            let (bootstrap, topic, n) = (arg(1), arg(2), arg(3).parse::<u64>().unwrap());
            let p = producer(&bootstrap);
            let start = Instant::now();
            for i in 0..n {
                send(&p, &topic, format!("user{}", i % 100_000).as_bytes(), event(i, 0).as_bytes());
            }
            p.flush(Duration::from_secs(120)).unwrap();
            let s = start.elapsed().as_secs_f64();
            println!("produce: {n} events in {s:.2}s = {:.0} events/s", n as f64 / s);
        }
        "copy" => {
            let (bootstrap, from, to, n) = (arg(1), arg(2), arg(3), arg(4).parse::<u64>().unwrap());
            let c = consumer(&bootstrap, &from, false);
            let p = producer(&bootstrap);
            let start = Instant::now();
            let mut got = 0;
            while got < n {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    send(&p, &to, m.key().unwrap_or_default(), m.payload().unwrap_or_default());
                    got += 1;
                }
            }
            p.flush(Duration::from_secs(120)).unwrap();
            let s = start.elapsed().as_secs_f64();
            println!("copy: {n} events in {s:.2}s = {:.0} events/s", n as f64 / s);
        }
        "latency" => {
            let (bootstrap, input, output) = (arg(1), arg(2), arg(3));
            let (rate, seconds) = (arg(4).parse::<u64>().unwrap(), arg(5).parse::<u64>().unwrap());
            let c = consumer(&bootstrap, &output, true);
            // Let the consumer reach the end before sending.
            for _ in 0..20 {
                c.poll(Duration::from_millis(50));
            }
            let bootstrap2 = bootstrap.clone();
            let sender = std::thread::spawn(move || {
                let p = producer(&bootstrap2);
                let start = Instant::now();
                let total = rate * seconds;
                for i in 0..total {
                    let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    send(&p, &input, format!("user{}", i % 100_000).as_bytes(), event(i, now_ms()).as_bytes());
                }
                p.flush(Duration::from_secs(30)).unwrap();
                total
            });
            let mut lat = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(seconds + 20);
            let total = rate * seconds;
            while (lat.len() as u64) < total && Instant::now() < deadline {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
                    if let Some(sent) = v["sent_ms"].as_i64() {
                        lat.push(now_ms() - sent);
                    }
                }
            }
            sender.join().unwrap();
            // The first second warms up connections and is left out.
            let skip = (rate as usize).min(lat.len());
            let mut l = lat[skip..].to_vec();
            l.sort();
            let q =
                |f: f64| l.get(((l.len() as f64 * f) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or(-1);
            println!(
                "latency at {rate} events/s over {seconds}s ({} measured of {} received): p50 {} ms, p99 {} ms, max {} ms",
                l.len(),
                lat.len(),
                q(0.50),
                q(0.99),
                l.last().copied().unwrap_or(-1)
            );
        }
        other => panic!("unknown mode '{other}'"),
    }
}
